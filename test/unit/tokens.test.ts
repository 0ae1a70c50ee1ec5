import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decideRequest, pendingRequests, revokeToken, tokenView } from "../../src/enroll/join-records.js";
import { readJoinFile, tokensPathBesideCa, updateJoinFile, type JoinFile, type RequestRecord } from "../../src/enroll/token-file.js";
import { checkToken, hashSecret, newRequestId, newToken, tokenStatus, type TokenRecord } from "../../src/enroll/tokens.js";
import { isFleetError } from "../../src/errors.js";
import { withFileLock } from "../../src/pki/locked-update.js";
import { TOKEN_ID_PATTERN, TOKEN_SECRET_PATTERN } from "../../src/protocol/join.js";

const NOW = new Date("2030-01-01T12:00:00.000Z");
const HOUR = 3_600_000;
const at = (ms: number) => new Date(NOW.getTime() + ms);

function token(over: Partial<TokenRecord> & { secret?: string } = {}): TokenRecord {
  const { secret = "s".repeat(24), ...rest } = over;
  return {
    id: "abc123",
    secretHash: hashSecret(secret),
    createdAt: NOW.toISOString(),
    expiresAt: at(HOUR).toISOString(),
    uses: 2,
    used: 0,
    labels: {},
    approve: "auto",
    replace: false,
    revokedAt: null,
    ...rest,
  };
}

// Shaped like a PEM CSR: the join file checks the form; the manager checks the content when it uses one.
const CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n";

function request(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    requestId: "req00001",
    requestedId: "web-1",
    hostname: "web-1.example",
    address: "10.0.0.5",
    keyFingerprint: "ab".repeat(32),
    csr: CSR,
    tokenId: null,
    labels: { role: "web" },
    createdAt: NOW.toISOString(),
    expiresAt: at(HOUR).toISOString(),
    status: "pending",
    ...over,
  };
}

describe("join tokens", () => {
  it("newToken makes an id and secret of the join string's alphabet, stores only the secret's SHA-256", () => {
    const labels = { role: "db" };
    const { record, secret } = newToken({ ttlMs: 2 * HOUR, uses: 3, labels, approve: "manual", replace: true, now: NOW });
    assert.match(record.id, TOKEN_ID_PATTERN);
    assert.match(secret, TOKEN_SECRET_PATTERN);
    assert.equal(record.secretHash, createHash("sha256").update(secret).digest("hex"));
    assert.ok(!JSON.stringify(record).includes(secret), "the record does not hold the secret");
    assert.deepEqual(
      { ...record, id: "x", secretHash: "x" },
      { id: "x", secretHash: "x", createdAt: NOW.toISOString(), expiresAt: at(2 * HOUR).toISOString(), uses: 3, used: 0, labels, approve: "manual", replace: true, revokedAt: null },
    );
    labels.role = "changed";
    assert.equal(record.labels.role, "db", "the record has its own copy of the labels");
    const many = new Set(Array.from({ length: 200 }, () => newToken({ ttlMs: HOUR, uses: 1, labels: {}, approve: "auto", replace: false, now: NOW }).secret));
    assert.equal(many.size, 200, "secrets do not repeat");
  });

  it("hashSecret is lower-case SHA-256 hex", () => {
    assert.equal(hashSecret("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("newRequestId is 8 of a-z 0-9", () => {
    for (let i = 0; i < 50; i++) assert.match(newRequestId(), /^[a-z0-9]{8}$/);
  });

  it("checkToken refuses in order: unknown, wrong secret, revoked, expired, exhausted", () => {
    const secret = "s".repeat(24);
    const good = { id: "abc123", secret };
    const check = (r: TokenRecord, presented = good, now = NOW) => checkToken([token({ id: "zzz999" }), r], presented, now);
    // Every fault at once: each check shows only when those before it pass.
    const worst = token({ revokedAt: NOW.toISOString(), expiresAt: at(-1).toISOString(), used: 2 });
    assert.deepEqual(check(worst, { id: "nope00", secret }), { ok: false, code: "unknown_token" });
    assert.deepEqual(check(worst, { id: "abc123", secret: "t".repeat(24) }), { ok: false, code: "wrong_secret" });
    assert.deepEqual(check(worst), { ok: false, code: "revoked_token" });
    assert.deepEqual(check(token({ expiresAt: at(-1).toISOString(), used: 2 })), { ok: false, code: "expired_token" });
    assert.deepEqual(check(token({ used: 2 })), { ok: false, code: "exhausted_token" });
    const ok = check(token({ used: 1 }));
    assert.ok(ok.ok && ok.record.id === "abc123");
    // Expiry is exclusive: at the instant it expires, it no longer works.
    assert.deepEqual(check(token(), good, at(HOUR)), { ok: false, code: "expired_token" });
    assert.ok(check(token(), good, at(HOUR - 1)).ok);
    // A stored hash that is not a SHA-256 matches no secret (and does not throw).
    assert.deepEqual(check(token({ secretHash: "short" })), { ok: false, code: "wrong_secret" });
    assert.deepEqual(checkToken([], good, NOW), { ok: false, code: "unknown_token" });
  });

  it("tokenStatus: revoked over expired over exhausted over active", () => {
    assert.equal(tokenStatus(token(), NOW), "active");
    assert.equal(tokenStatus(token({ used: 2 }), NOW), "exhausted");
    assert.equal(tokenStatus(token({ used: 2 }), at(HOUR)), "expired");
    assert.equal(tokenStatus(token(), at(HOUR)), "expired");
    assert.equal(tokenStatus(token({ used: 2, revokedAt: NOW.toISOString() }), at(HOUR)), "revoked");
    assert.equal(tokenStatus(token({ revokedAt: NOW.toISOString() }), NOW), "revoked");
  });

  it("tokenView shows everything but the secret's hash", () => {
    const v = tokenView(token({ used: 1, labels: { a: "b" } }), NOW);
    assert.equal(v.status, "active");
    assert.deepEqual(Object.keys(v).sort(), ["approve", "createdAt", "expiresAt", "id", "labels", "replace", "revokedAt", "status", "used", "uses"]);
  });
});

describe("join requests in the join file", () => {
  const file = (): JoinFile => ({
    version: 1,
    tokens: [token()],
    requests: [
      request({ requestId: "newer001", createdAt: at(1000).toISOString() }),
      request({ requestId: "older001" }),
      request({ requestId: "expired1", expiresAt: at(-1).toISOString() }),
      request({ requestId: "denied01", status: "denied", decidedAt: NOW.toISOString(), decidedBy: "cli:ann" }),
    ],
  });

  it("pendingRequests: undecided and unexpired, oldest first", () => {
    assert.deepEqual(pendingRequests(file(), NOW).map((r) => r.requestId), ["older001", "newer001"]);
  });

  it("decideRequest decides a pending request only", () => {
    const f = file();
    const r = decideRequest(f, { requestId: "older001", decision: "approved", by: "cli:ann", now: NOW, path: "t.json" });
    assert.deepEqual([r.status, r.decidedAt, r.decidedBy], ["approved", NOW.toISOString(), "cli:ann"]);
    const refused = (requestId: string, pattern: RegExp) =>
      assert.throws(
        () => decideRequest(f, { requestId, decision: "denied", by: "cli:bob", now: NOW, path: "t.json" }),
        (err) => isFleetError(err, "E_UNKNOWN_REQUEST") && pattern.test(err.message),
      );
    refused("older001", /already approved by cli:ann/);
    refused("denied01", /already denied/);
    refused("expired1", /expired at/);
    refused("nosuch01", /no join request "nosuch01" in t\.json/);
  });

  it("revokeToken sets revokedAt once; an unknown id is a clear E_CONFIG", () => {
    const f = file();
    assert.equal(revokeToken(f, "abc123", NOW, "t.json").already, false);
    assert.equal(f.tokens[0]!.revokedAt, NOW.toISOString());
    assert.equal(revokeToken(f, "abc123", at(5), "t.json").already, true);
    assert.equal(f.tokens[0]!.revokedAt, NOW.toISOString());
    assert.throws(() => revokeToken(f, "zzzzzz", NOW, "t.json"), (err) => isFleetError(err, "E_CONFIG") && /no join token "zzzzzz" in t\.json/.test(err.message));
  });
});

describe("the join file on disk", () => {
  let dir: string;
  before(async () => (dir = await mkdtemp(join(tmpdir(), "mcp-fleet-tokens-"))));
  after(() => rm(dir, { recursive: true, force: true }));

  it("lives beside the CA", () => {
    assert.equal(tokensPathBesideCa("/etc/mcp-fleet/certs/ca.pem"), "/etc/mcp-fleet/certs/tokens.json");
  });

  it("a missing file reads as empty; a change round-trips, mode 0600, no temporary or lock file left", async () => {
    const path = join(dir, "round.json");
    assert.deepEqual(await readJoinFile(path), { version: 1, tokens: [], requests: [] });
    const withCert = request({ status: "approved", decidedAt: NOW.toISOString(), decidedBy: "mcp:claude", certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", serialNumber: "0a1b", notAfter: at(HOUR).toISOString() });
    const returned = await updateJoinFile(path, (f) => {
      f.tokens.push(token({ labels: { role: "db" } }));
      f.requests.push(request(), withCert);
      return "done";
    });
    assert.equal(returned, "done");
    assert.deepEqual(await readJoinFile(path), { version: 1, tokens: [token({ labels: { role: "db" } })], requests: [request(), withCert] });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["round.json"]);
  });

  it("a change that reads only does not rewrite the file", async () => {
    const path = join(dir, "round.json");
    const before = (await stat(path)).mtimeMs;
    const text = await readFile(path, "utf8");
    await updateJoinFile(path, (f) => f.tokens.length);
    assert.equal((await stat(path)).mtimeMs, before);
    assert.equal(await readFile(path, "utf8"), text);
  });

  it("two concurrent updates in one process both land", async () => {
    const path = join(dir, "race.json");
    let inside = 0;
    let most = 0;
    const add = (id: string) =>
      updateJoinFile(path, async (f) => {
        most = Math.max(most, ++inside);
        // Yield between read and write, where an unlocked update would lose the other's token.
        await new Promise((r) => setImmediate(r));
        f.tokens.push(token({ id }));
        inside--;
      });
    await Promise.all([add("aaaaaa"), add("bbbbbb"), add("cccccc")]);
    assert.equal(most, 1, "one change at a time");
    assert.deepEqual((await readJoinFile(path)).tokens.map((t) => t.id).sort(), ["aaaaaa", "bbbbbb", "cccccc"]);
  });

  it("a burst of updates in one process lands in the order asked, each waiting its turn rather than polling the lock", async () => {
    const path = join(dir, "burst.json");
    const ids = Array.from({ length: 40 }, (_, i) => `b${String(i).padStart(5, "0")}`);
    // Each change yields to the event loop, so updates that polled the lock file against each other would take
    // it in whatever order their polls happened to come round.
    await Promise.all(
      ids.map((id) =>
        updateJoinFile(path, async (f) => {
          await new Promise((r) => setTimeout(r, 2));
          f.tokens.push(token({ id }));
        }),
      ),
    );
    assert.deepEqual((await readJoinFile(path)).tokens.map((t) => t.id), ids);
  });

  it("a change that throws writes nothing and releases the lock", async () => {
    const path = join(dir, "race.json");
    const text = await readFile(path, "utf8");
    await assert.rejects(updateJoinFile(path, () => { throw new Error("no"); }), /no/);
    assert.equal(await readFile(path, "utf8"), text);
    await updateJoinFile(path, (f) => void f.tokens.pop());
    assert.equal((await readJoinFile(path)).tokens.length, 2);
  });

  it("a change that leaves a bad record is refused before it is written", async () => {
    const path = join(dir, "race.json");
    const text = await readFile(path, "utf8");
    await assert.rejects(
      updateJoinFile(path, (f) => void f.tokens.push(token({ id: "UPPER!" }))),
      (err) => isFleetError(err, "E_CONFIG") && /would not be a join file after this change: tokens\[2\]\.id/.test(err.message),
    );
    assert.equal(await readFile(path, "utf8"), text);
  });

  it("a lock held past the wait is an error naming the lock file and its likely holder", async () => {
    const path = join(dir, "held.json");
    const busy = { code: "E_CONFIG", holder: "the first one" } as const;
    await withFileLock(path, busy, async () => {
      await assert.rejects(
        withFileLock(path, busy, async () => assert.fail("ran without the lock"), 100),
        (err) => isFleetError(err, "E_CONFIG") && err.message === `${path}.lock is held by the first one`,
      );
    });
    await withFileLock(path, busy, async () => undefined, 100);
  });

  it("a bad file is an E_CONFIG naming the file and the field", async () => {
    const path = join(dir, "bad.json");
    const good = { version: 1, tokens: [token()], requests: [request()] };
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, tokens: [{ ...token(), expiresAt: "tomorrow" }] }, /tokens\[0\]\.expiresAt: /],
      [{ ...good, requests: [{ ...request(), status: "maybe" }] }, /requests\[0\]\.status: /],
      [{ ...good, tokens: [{ ...token(), secretHash: undefined }] }, /tokens\[0\]\.secretHash: /],
      [{ ...good, version: 2 }, /version: /],
    ];
    for (const [content, field] of cases) {
      await writeFile(path, JSON.stringify(content));
      await assert.rejects(readJoinFile(path), (err) => {
        assert.ok(isFleetError(err, "E_CONFIG"), String(err));
        assert.ok(err.message.startsWith(`${path} is not a join file: `), err.message);
        assert.match(err.message, field);
        return true;
      });
    }
    await writeFile(path, "{ not json");
    await assert.rejects(readJoinFile(path), (err) => isFleetError(err, "E_CONFIG") && err.message.startsWith(`${path} is not readable JSON`));
  });
});
