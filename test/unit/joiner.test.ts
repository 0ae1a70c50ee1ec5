import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join as joinPath } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { createCsr, inspectCsr, keyFingerprint } from "../../src/pki/csr.js";
import { caPin } from "../../src/pki/pin.js";
import { initFleet } from "../../src/pki/store.js";
import type { JoinString } from "../../src/protocol/join.js";
import { Backoff } from "../../src/worker/backoff.js";
import { enrolledPaths, loadEnrolledIdentity } from "../../src/worker/join/enrolled-identity.js";
import { joinFleet, type JoinerOptions } from "../../src/worker/join/joiner.js";
import { tempDir } from "../helpers/fleet.js";
import { signCsr, startJoinServer, type JoinServer } from "../helpers/join-server.js";

const read = (p: string) => readFileSync(p, "utf8");
type Line = Record<string, unknown>;

describe("joiner: the join loop against one manager", () => {
  let dir = "";
  let rogueDir = "";
  let cleanups: Array<() => Promise<void>> = [];
  const servers: JoinServer[] = [];
  let join: JoinString;
  let ca: { certPem: string; keyPem: string };
  let state = 0;

  before(async () => {
    const a = await tempDir("joiner-fleet");
    const b = await tempDir("joiner-rogue");
    cleanups = [a.cleanup, b.cleanup];
    dir = a.path;
    rogueDir = b.path;
    await initFleet({ dir, fleet: "test" });
    await initFleet({ dir: rogueDir, fleet: "test" });
    ca = { certPem: read(joinPath(dir, "ca.pem")), keyPem: read(joinPath(dir, "ca-key.pem")) };
    join = { token: { id: "abc123", secret: "s".repeat(24) }, pin: caPin(ca.certPem) };
  });
  after(async () => {
    for (const s of servers) await s.close();
    for (const c of cleanups) await c();
  });

  const chain = (d: string) => ["manager.pem", "ca.pem"].map((f) => read(joinPath(d, f)).trimEnd() + "\n").join("");
  async function serve(answer: Parameters<typeof startJoinServer>[0]["answer"], d = dir) {
    const s = await startJoinServer({ cert: chain(d), key: read(joinPath(d, "manager-key.pem")), answer });
    servers.push(s);
    return s;
  }
  const issued = async (body: unknown, id = "host1") => {
    const csr = (body as { csr: string }).csr;
    const { certPem } = await signCsr({ ca, csrPem: csr, fleet: "test", id });
    return { status: 200, body: { status: "issued", id, certificate: certPem, ca: ca.certPem, notAfter: new Date(Date.now() + 86_400_000).toISOString() } };
  };
  function options(url: string, lines: Line[], signal = new AbortController().signal): JoinerOptions {
    return {
      join,
      paths: enrolledPaths(joinPath(dir, `state-${state++}`)),
      requestedId: "host1",
      hostname: "host1.example",
      manager: url,
      browser: null,
      log: createLogger({ name: "joiner-test", level: "debug", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Line) } }),
      signal,
      refusalBackoff: new Backoff(50, 200),
      failureBackoff: new Backoff(50, 200),
    };
  }

  it("pending, pending, issued: one key for every request, one 'waiting' line, the identity kept", async () => {
    let n = 0;
    const s = await serve(async (body) => (++n < 3 ? { status: 202, body: { status: "pending", requestId: "req00001", retryAfterMs: 0 } } : issued(body)));
    const lines: Line[] = [];
    const o = options(s.url, lines);
    const material = await joinFleet(o);
    assert.ok(material);
    assert.equal(material.self.identity.id, "host1");
    assert.equal(s.requests.length, 3);
    const inspected = await Promise.all(s.requests.map((r) => inspectCsr((r.body as { csr: string }).csr)));
    const keys = new Set(inspected.map((i) => (i.ok ? i.keyFingerprint : i.error)));
    assert.equal(keys.size, 1, "the same key asks each time, so the manager finds the same request");
    assert.equal(keyFingerprint(read(o.paths.key)), [...keys][0]);
    assert.equal(lines.filter((l) => l.msg === "waiting for an operator to approve join request req00001").length, 1);
    assert.ok(lines.some((l) => l.msg === "joined the fleet"));
    assert.equal(statSync(o.paths.key).mode & 0o777, 0o600);
    assert.equal(existsSync(o.paths.pendingKey), false);
    assert.equal(loadEnrolledIdentity(o.paths).status, "valid");
    assert.equal((s.requests[0]!.body as { waitMs: number }).waitMs, 20_000);
  });

  it("refused: logged with code and manager, retried no sooner than retryAfterMs", async () => {
    let n = 0;
    const at: number[] = [];
    const s = await serve(async (body) => {
      at.push(performance.now());
      return ++n === 1 ? { status: 429, body: { status: "refused", code: "rate_limited", message: "slow down", retryAfterMs: 400 } } : issued(body);
    });
    const lines: Line[] = [];
    assert.ok(await joinFleet(options(s.url, lines)));
    const refused = lines.find((l) => l.msg === "join refused");
    assert.ok(refused);
    assert.equal(refused.code, "rate_limited");
    assert.equal(refused.manager, s.url);
    assert.ok(at[1]! - at[0]! >= 390, `waited ${at[1]! - at[0]!} ms`);
  });

  it("an issued certificate for another key, or from another CA, is not kept", async () => {
    let n = 0;
    const s = await serve(async (body) => {
      n++;
      if (n === 1) return issued({ csr: (await createCsr({ id: "host1" })).csrPem });
      if (n === 2) {
        const a = await issued(body);
        return { ...a, body: { ...a.body, ca: read(joinPath(rogueDir, "ca.pem")) } };
      }
      return issued(body);
    });
    const lines: Line[] = [];
    const o = options(s.url, lines);
    assert.ok(await joinFleet(o));
    const refusals = lines.filter((l) => l.msg === "the manager issued a certificate this worker cannot use; not keeping it").map((l) => l.reason);
    assert.deepEqual(refusals, ["the certificate is not for this worker's key", "the CA certificate in the answer is not the pinned CA"]);
  });

  it("a rogue manager: pin_mismatch logged, nothing sent; stopping ends the loop", async () => {
    const s = await serve(() => ({ status: 500, body: {} }), rogueDir);
    const lines: Line[] = [];
    const ac = new AbortController();
    const running = joinFleet(options(s.url, lines, ac.signal));
    await waitUntil(() => lines.filter((l) => String(l.msg).startsWith("pin_mismatch")).length >= 2, 10_000);
    ac.abort();
    assert.equal(await running, null);
    assert.equal(s.requests.length, 0);
    assert.deepEqual(s.received.filter((b) => b > 0), []);
  });

  it("stopping during a long poll answers at once", async () => {
    const s = await serve(() => new Promise(() => {}));
    const lines: Line[] = [];
    const ac = new AbortController();
    const running = joinFleet(options(s.url, lines, ac.signal));
    await waitUntil(() => s.requests.length === 1, 10_000);
    const t0 = performance.now();
    ac.abort();
    assert.equal(await running, null);
    assert.ok(performance.now() - t0 < 1000);
  });
});

async function waitUntil(ok: () => boolean, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!ok()) {
    if (performance.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
