import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join as joinPath } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCsr } from "../../src/pki/csr.js";
import { caPin } from "../../src/pki/pin.js";
import { initFleet, issueWorker } from "../../src/pki/store.js";
import { JOIN_PATH, type JoinString } from "../../src/protocol/join.js";
import { askToJoin, type JoinFields } from "../../src/worker/join/join-client.js";
import { tempDir } from "../helpers/fleet.js";
import { startJoinServer, type JoinServer } from "../helpers/join-server.js";

const read = (p: string) => readFileSync(p, "utf8");

describe("join client: the pin is checked before a byte is sent", () => {
  const dirs: Array<() => Promise<void>> = [];
  const servers: JoinServer[] = [];
  let fleet = "";
  let rogue = "";
  let join: JoinString;
  let fields: JoinFields;

  before(async () => {
    const a = await tempDir("join-client-fleet");
    const b = await tempDir("join-client-rogue");
    dirs.push(a.cleanup, b.cleanup);
    fleet = a.path;
    rogue = b.path;
    await initFleet({ dir: fleet, fleet: "test" });
    await initFleet({ dir: rogue, fleet: "test" });
    await issueWorker({ dir: fleet, id: "w1" });
    join = { token: { id: "abc123", secret: "s".repeat(24) }, pin: caPin(read(joinPath(fleet, "ca.pem"))) };
    fields = { requestedId: "host1", hostname: "host1.example", csr: (await createCsr({ id: "host1" })).csrPem, waitMs: 0 };
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const c of dirs) await c();
  });

  async function serve(certFiles: string[], keyFile: string, answer: (body: unknown) => { status: number; body: unknown } = () => pending) {
    const s = await startJoinServer({ cert: certFiles.map((f) => read(f).trimEnd() + "\n").join(""), key: read(keyFile), answer });
    servers.push(s);
    return s;
  }

  const pending = { status: 200, body: { status: "pending", requestId: "abcd1234", retryAfterMs: 0 } };

  it("the fleet's manager chain: the JoinRequest is sent, with the token, and the answer read", async () => {
    const s = await serve([joinPath(fleet, "manager.pem"), joinPath(fleet, "ca.pem")], joinPath(fleet, "manager-key.pem"));
    const got = await askToJoin(s.url, join, fields, new AbortController().signal);
    assert.equal(got.status, "pending", JSON.stringify(got));
    assert.ok("manager" in got);
    assert.equal(got.manager.id, "manager");
    assert.equal(caPin(got.manager.caPem), join.pin);
    assert.equal(s.requests.length, 1);
    assert.equal(s.requests[0]!.path, JOIN_PATH);
    assert.deepEqual(s.requests[0]!.body, { protocol: 1, token: join.token, ...fields });
  });

  it("a refusal comes back as the answer, whatever the HTTP status", async () => {
    const refused = { status: 403, body: { status: "refused", code: "wrong_secret", message: "the join token's secret is wrong" } };
    const s = await serve([joinPath(fleet, "manager.pem"), joinPath(fleet, "ca.pem")], joinPath(fleet, "manager-key.pem"), () => refused);
    const got = await askToJoin(s.url, { ...join, token: null }, fields, new AbortController().signal);
    assert.equal(got.status, "refused");
    assert.equal((got as { code: string }).code, "wrong_secret");
    assert.equal((s.requests[0]!.body as { token?: unknown }).token, undefined, "no token in the join string: none sent");
  });

  for (const [name, chain, key, status] of [
    ["a rogue CA's manager", ["manager.pem", "ca.pem"], "manager-key.pem", "pin_mismatch"],
    ["a rogue manager presenting the fleet CA's certificate in its chain", ["manager.pem", "FLEET:ca.pem"], "manager-key.pem", "pin_mismatch"],
    ["a rogue manager presenting no chain", ["manager.pem"], "manager-key.pem", "pin_mismatch"],
  ] as const) {
    it(`${name}: ${status}, and the server received zero application bytes`, async () => {
      const files = chain.map((f) => (f.startsWith("FLEET:") ? joinPath(fleet, f.slice(6)) : joinPath(rogue, f)));
      const s = await serve(files, joinPath(rogue, key));
      const got = await askToJoin(s.url, join, fields, new AbortController().signal);
      assert.equal(got.status, status, JSON.stringify(got));
      await s.waitClosed(1);
      assert.deepEqual(s.received.filter((n) => n > 0), [], "no application bytes");
      assert.equal(s.requests.length, 0);
    });
  }

  it("the fleet's own worker certificate instead of a manager's: not_a_manager, nothing sent", async () => {
    const s = await serve([joinPath(fleet, "workers/w1.pem"), joinPath(fleet, "ca.pem")], joinPath(fleet, "workers/w1-key.pem"));
    const got = await askToJoin(s.url, join, fields, new AbortController().signal);
    assert.equal(got.status, "not_a_manager", JSON.stringify(got));
    assert.match((got as { message: string }).message, /names a worker/);
    await s.waitClosed(1);
    assert.deepEqual(s.received.filter((n) => n > 0), []);
  });

  it("an answer that is not a JoinAnswer is bad_answer", async () => {
    const s = await serve([joinPath(fleet, "manager.pem"), joinPath(fleet, "ca.pem")], joinPath(fleet, "manager-key.pem"), () => ({ status: 200, body: { status: "issued" } }));
    const got = await askToJoin(s.url, join, fields, new AbortController().signal);
    assert.equal(got.status, "bad_answer");
  });

  it("nobody listening: unreachable; aborted: aborted", async () => {
    const s = await serve([joinPath(fleet, "manager.pem"), joinPath(fleet, "ca.pem")], joinPath(fleet, "manager-key.pem"));
    const url = s.url;
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    assert.equal((await askToJoin(url, join, fields, new AbortController().signal)).status, "unreachable");
    const ac = new AbortController();
    ac.abort();
    assert.equal((await askToJoin(url, join, fields, ac.signal)).status, "aborted");
  });
});
