import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readJoinFile, type RequestRecord } from "../../src/enroll/token-file.js";
import { caPin } from "../../src/pki/pin.js";
import { parseJoinString } from "../../src/protocol/join.js";
import { tempDir } from "../helpers/fleet.js";
import { runCli } from "../helpers/processes.js";

// Shaped like a PEM CSR: the join file checks the form; only the manager, which is not running here, reads one.
const CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n";

describe("mcp-fleet token", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let tokensPath: string;
  let tokenId: string;
  let secret: string;

  before(async () => {
    ({ path: dir, cleanup } = await tempDir("token-cli"));
    tokensPath = join(dir, "tokens.json");
    const init = await runCli(["certs", "init", "--dir", dir, "--fleet", "lab"]);
    assert.equal(init.code, 0, init.stderr);
  });
  after(() => cleanup());

  const token = (...args: string[]) => runCli(["token", ...args, "--dir", dir]);

  it("create prints one join string pinning ca.pem, and a note on stderr; the file is 0600 and holds no secret", async () => {
    const r = await token("create", "--ttl", "2h", "--uses", "3", "--labels", "role=db,zone=eu-1", "--approve", "manual");
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n").filter(Boolean);
    assert.equal(lines.length, 1, "stdout is the join string alone");
    const parsed = parseJoinString(lines[0]!);
    assert.ok(parsed.ok, lines[0]);
    assert.equal(parsed.join.pin, caPin(readFileSync(join(dir, "ca.pem"))));
    assert.ok(parsed.join.token);
    ({ id: tokenId, secret } = parsed.join.token);
    assert.match(r.stderr, new RegExp(`token ${tokenId}: 3 uses, approve manual, labels role=db,zone=eu-1, expires \\S+ \\(in 2h\\)`));
    assert.match(r.stderr, /shown once: it is not stored/);
    assert.ok(!r.stderr.includes(secret), "the note does not repeat the secret");

    assert.equal(statSync(tokensPath).mode & 0o777, 0o600);
    const text = readFileSync(tokensPath, "utf8");
    assert.ok(!text.includes(secret), "the file holds only the secret's hash");
    const [record] = (await readJoinFile(tokensPath)).tokens;
    assert.deepEqual([record?.id, record?.uses, record?.approve, record?.labels], [tokenId, 3, "manual", { role: "db", zone: "eu-1" }]);
    assert.ok(Math.abs(Date.parse(record!.expiresAt) - Date.parse(record!.createdAt) - 2 * 3_600_000) < 1000);
  });

  it("create refuses a ttl or a use count out of range, naming the flag, and writes nothing", async () => {
    const before = readFileSync(tokensPath, "utf8");
    // loadConfig names every bad setting of one command; the processes run side by side to keep the file quick.
    const cases = [
      [["--ttl", "30s", "--uses", "0"], [/--ttl \(MCP_FLEET_TTL\): must be at least 1m/, /--uses \(MCP_FLEET_USES\)/]],
      [["--ttl", "31d", "--uses", "10001"], [/--ttl \(MCP_FLEET_TTL\): must be at most 30d/, /--uses \(MCP_FLEET_USES\)/]],
      [["--approve", "sometimes"], [/--approve/]],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => token("create", ...args)));
    cases.forEach(([args, messages], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      for (const m of messages) assert.match(r.stderr, m);
      assert.equal(r.stdout, "");
    });
    assert.equal(readFileSync(tokensPath, "utf8"), before);
  });

  it("list shows the token without its secret or hash; revoke marks it revoked; an unknown id exits 2", async () => {
    const [list, json] = await Promise.all([token("list"), token("list", "--json")]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+STATUS\s+USES\s+EXPIRES\s+APPROVE\s+LABELS$/m);
    assert.match(list.stdout, new RegExp(`^${tokenId}\\s+active\\s+0/3\\s+\\S+Z\\s+manual\\s+role=db,zone=eu-1$`, "m"));
    assert.equal(json.code, 0, json.stderr);
    const hash = (await readJoinFile(tokensPath)).tokens[0]!.secretHash;
    for (const out of [list.stdout, json.stdout]) {
      assert.ok(!out.includes(secret) && !out.includes(hash), "neither the secret nor its hash is shown");
    }
    const [view] = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual([view?.id, view?.status, view?.used, view?.uses], [tokenId, "active", 0, 3]);

    const revoke = await token("revoke", tokenId);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, new RegExp(`revoked token ${tokenId}`));
    const [after, unknown] = await Promise.all([token("list"), token("revoke", "zzzzzz")]);
    assert.match(after.stdout, new RegExp(`^${tokenId}\\s+revoked\\s`, "m"));
    assert.ok((await readJoinFile(tokensPath)).tokens[0]!.revokedAt);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^mcp-fleet: no join token "zzzzzz" in \S+tokens\.json/);
  });

  it("requests lists a pending request; approve and deny decide it, once; unknown ids exit 2", async () => {
    const now = Date.now();
    const pending = (requestId: string, hostname: string, ageMs: number): RequestRecord => ({
      requestId,
      requestedId: hostname,
      hostname: `${hostname}.example`,
      address: "10.1.2.3",
      keyFingerprint: requestId[0]!.repeat(64),
      csr: CSR,
      tokenId: null,
      labels: {},
      createdAt: new Date(now - ageMs).toISOString(),
      expiresAt: new Date(now - ageMs + 3_600_000).toISOString(),
      status: "pending",
    });
    const file = JSON.parse(readFileSync(tokensPath, "utf8")) as { requests: RequestRecord[] };
    file.requests.push(pending("aaaa1111", "web-1", 90_000), pending("bbbb2222", "web-2", 5_000), { ...pending("cccc3333", "gone", 0), expiresAt: new Date(now - 1).toISOString() });
    writeFileSync(tokensPath, JSON.stringify(file));

    const [list, listed] = await Promise.all([token("requests"), token("requests", "--json")]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^REQUEST\s+ID\s+HOST\s+ADDRESS\s+KEY\s+TOKEN\s+AGE$/m);
    assert.match(list.stdout, new RegExp(`^aaaa1111\\s+web-1\\s+web-1\\.example\\s+10\\.1\\.2\\.3\\s+${"a".repeat(64)}\\s+1\\.\\dm$`, "m"));
    assert.match(list.stdout, /^bbbb2222\s+web-2\s/m);
    assert.ok(!list.stdout.includes("cccc3333"), "an expired request is not listed");
    assert.ok(list.stdout.indexOf("aaaa1111") < list.stdout.indexOf("bbbb2222"), "oldest first");
    const json = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(json.map((r) => r.requestId), ["aaaa1111", "bbbb2222"]);
    assert.ok(!("csr" in json[0]!));

    // Side by side: two processes deciding at once both land, one after the other under the file's lock.
    const [approve, deny] = await Promise.all([token("approve", "aaaa1111"), token("deny", "bbbb2222")]);
    assert.equal(approve.code, 0, approve.stderr);
    assert.match(approve.stdout, /approved join request aaaa1111 \(host web-1\.example, id "web-1"\)/);
    assert.equal(deny.code, 0, deny.stderr);
    const byId = new Map((await readJoinFile(tokensPath)).requests.map((r) => [r.requestId, r]));
    assert.equal(byId.get("aaaa1111")?.status, "approved");
    assert.equal(byId.get("bbbb2222")?.status, "denied");
    for (const r of [byId.get("aaaa1111")!, byId.get("bbbb2222")!]) {
      assert.match(r.decidedBy ?? "", /^cli:\S+$/);
      assert.ok(Math.abs(Date.parse(r.decidedAt!) - Date.now()) < 60_000);
    }
    const refusals = [
      [["deny", "aaaa1111"], /join request "aaaa1111" was already approved by cli:/],
      [["approve", "cccc3333"], /join request "cccc3333" expired at/],
      [["approve", "zzzz9999"], /no join request "zzzz9999" in \S+tokens\.json/],
      [["deny", "zzzz9999"], /no join request "zzzz9999"/],
    ] as const;
    const [none, ...refused] = await Promise.all([token("requests"), ...refusals.map(([args]) => token(...args))]);
    assert.match(none!.stdout, /no join requests waiting for approval/);
    refusals.forEach(([args, message], i) => {
      assert.equal(refused[i]!.code, 2, `${args.join(" ")}: ${refused[i]!.stderr}`);
      assert.match(refused[i]!.stderr, message);
    });
  });

  it("a broken join file is named with its bad field, exit 2", async () => {
    const file = JSON.parse(readFileSync(tokensPath, "utf8")) as { tokens: Array<Record<string, unknown>> };
    file.tokens[0]!.uses = "many";
    writeFileSync(tokensPath, JSON.stringify(file));
    const r = await token("list");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tokens\.json is not a join file: tokens\[0\]\.uses: /);
  });
});
