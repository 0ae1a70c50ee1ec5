import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, mock } from "node:test";
import { DEFAULT_POLICY, type HealthPolicy } from "../../src/core/health.js";
import { createLogger } from "../../src/log.js";
import { Chores, type ChoreParts } from "../../src/manager/chores.js";
import { PaceController } from "../../src/manager/pace-controller.js";
import { SessionTable } from "../../src/manager/session-table.js";
import type { WorkerSession } from "../../src/manager/session.js";
import { caFingerprint, loadTicketKeys } from "../../src/manager/ticket-keys.js";
import { createCa, issueCertificate, type Pem } from "../../src/pki/generate.js";
import { signedBy } from "../../src/tls/signed-by.js";

const log = createLogger({ name: "test", level: "silent" });

/** A registry as the pace controller sees it: a size, and the policy it sets. */
function pacedRegistry(expected: number) {
  const r = {
    expected,
    policy: { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000 } as HealthPolicy,
    expectedSessions: () => r.expected,
    get healthPolicy() {
      return r.policy;
    },
    setPolicy: (p: HealthPolicy) => void (r.policy = p),
  };
  return r;
}

describe("PaceController", () => {
  it("paces for the fleet expected back at start", () => {
    const r = pacedRegistry(5000);
    const pace = new PaceController(r, 1000, 2000, log);
    assert.equal(pace.interval, 2500);
    assert.equal(r.policy.heartbeatIntervalMs, 2500, "the health bound follows at once");
  });

  it("lengthens the bound at once; shortens the workers first and the bound two old intervals later", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const r = pacedRegistry(1000);
      const pace = new PaceController(r, 1000, 1000, log);
      const told: number[] = [];
      r.expected = 3000;
      pace.repace(3000, (ms) => told.push(ms));
      assert.deepEqual(told, [3000]);
      assert.equal(r.policy.heartbeatIntervalMs, 3000);
      r.expected = 2500; // not a clear shrink (above 3/4): no change
      pace.repace(2500, (ms) => told.push(ms));
      assert.deepEqual(told, [3000]);
      r.expected = 1000;
      pace.repace(1000, (ms) => told.push(ms));
      assert.deepEqual(told, [3000, 1000]);
      assert.equal(pace.interval, 1000, "new sessions get the shorter interval at once");
      assert.equal(r.policy.heartbeatIntervalMs, 3000, "the bound is still the old one");
      mock.timers.tick(5999);
      assert.equal(r.policy.heartbeatIntervalMs, 3000);
      mock.timers.tick(1);
      assert.equal(r.policy.heartbeatIntervalMs, 1000);
      pace.stop();
    } finally {
      mock.timers.reset();
    }
  });

  it("without a budget it never changes", () => {
    const r = pacedRegistry(100_000);
    const pace = new PaceController(r, 1000, 0, log);
    pace.repace(100_000, () => assert.fail("no broadcast"));
    assert.equal(pace.interval, 1000);
  });
});

describe("Chores", () => {
  function parts(silent: Array<{ id: string; sessionId: string }> = []) {
    const calls: string[] = [];
    const closed: Array<[string, number]> = [];
    const sessions = new SessionTable();
    const session = { workerId: "w1", sessionId: "s1", address: "a", close: (code: number) => closed.push(["w1", code]), pace: () => calls.push("pace w1") };
    sessions.add(session as unknown as WorkerSession);
    sessions.accepted(session as unknown as WorkerSession);
    const p: ChoreParts = {
      registry: {
        tick: () => (calls.push("tick"), { stalledMs: null }),
        silentSessions: () => (calls.push("sweep"), silent),
        healthPolicy: { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000, missedHeartbeats: 3 },
      } as unknown as ChoreParts["registry"],
      door: { observeLag: () => calls.push("lag"), pump: () => calls.push("pump") } as unknown as ChoreParts["door"],
      pace: { repace: (_n: number, broadcast: (ms: number) => void) => (calls.push("repace"), broadcast(2000)) } as unknown as ChoreParts["pace"],
      sessions,
      rate: { expire: () => calls.push("expire") } as unknown as ChoreParts["rate"],
    };
    return { p, calls, closed };
  }

  it("every tick: the gate's lag, the registry, the gate; every second the pace; every ten seconds the sweeps", () => {
    const { p, calls, closed } = parts([{ id: "w1", sessionId: "s1" }, { id: "w1", sessionId: "old" }]);
    const chores = new Chores(p, 0);
    chores.run(100);
    assert.deepEqual(calls, ["lag", "tick", "pump"]);
    calls.length = 0;
    chores.run(1000);
    assert.deepEqual(calls, ["lag", "tick", "pump", "repace", "pace w1"]);
    for (let s = 2; s <= 9; s++) chores.run(s * 1000);
    assert.ok(!calls.includes("sweep"));
    calls.length = 0;
    chores.run(10_000);
    assert.deepEqual(calls, ["lag", "tick", "pump", "repace", "pace w1", "sweep", "expire"]);
    assert.deepEqual(closed, [["w1", 4008]], "only the current session of a silent worker is closed");
  });
});

describe("SessionTable", () => {
  const fake = (workerId: string, address: string | null) => {
    const closes: number[] = [];
    return { s: { workerId, address, close: (c: number) => closes.push(c) } as unknown as WorkerSession, closes };
  };

  it("counts sessions waiting for hello per address until hello or close; a second hello replaces the first", () => {
    const t = new SessionTable();
    const a = fake("w1", "10.0.0.1");
    const b = fake("w1", "10.0.0.1");
    const c = fake("w2", null);
    t.add(a.s);
    t.add(b.s);
    t.add(c.s);
    assert.equal(t.pendingFrom("10.0.0.1"), 2);
    assert.equal(t.pendingFrom(null), 1);
    t.accepted(a.s);
    assert.equal(t.pendingFrom("10.0.0.1"), 1);
    t.accepted(b.s);
    assert.deepEqual(a.closes, [4005]);
    assert.equal(t.current("w1"), b.s);
    t.ended(c.s);
    t.ended(c.s);
    assert.equal(t.pendingFrom(null), 0);
    t.ended(a.s);
    assert.equal(t.current("w1"), b.s, "the replaced session's end leaves the current one");
    assert.equal(t.size, 1);
    assert.equal(t.connected, 1);
  });
});

describe("TLS credentials", () => {
  let ca: Pem;
  let other: Pem;
  let dir: string;
  before(async () => {
    ca = await createCa({ fleet: "t", days: 30 });
    other = await createCa({ fleet: "t", days: 30 });
    dir = mkdtempSync(join(tmpdir(), "mcp-fleet-parts-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("signedBy: a certificate verifies against the key of the CA that signed it, and no other", async () => {
    const leaf = await issueCertificate({ ca, identity: { role: "worker", id: "w1", fleet: "t" }, days: 1 });
    const der = new X509Certificate(leaf.certPem).raw;
    assert.equal(signedBy(der, createPublicKey(ca.certPem)), true);
    assert.equal(signedBy(der, createPublicKey(other.certPem)), false, "same fleet name, another CA key");
    const flipped = Buffer.from(der);
    flipped[40] = flipped[40]! ^ 1;
    assert.equal(signedBy(flipped, createPublicKey(ca.certPem)), false, "a changed byte in the signed part");
    assert.equal(signedBy(der.subarray(0, 100), createPublicKey(ca.certPem)), false, "truncated");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
    assert.equal(signedBy(der, rsa), false);
  });

  it("ticket keys are kept for the same CA and replaced when the CA changes", () => {
    const path = join(dir, "state.json.ticket-keys");
    const fp = caFingerprint(Buffer.from(ca.certPem));
    const first = loadTicketKeys(path, fp, log);
    assert.equal(first.length, 48);
    assert.deepEqual(loadTicketKeys(path, fp, log), first, "same CA: the same keys");
    const saved = JSON.parse(readFileSync(path, "utf8")) as { ca: string };
    assert.equal(saved.ca, fp);
    const otherFp = caFingerprint(Buffer.from(other.certPem));
    const second = loadTicketKeys(path, otherFp, log);
    assert.notDeepEqual(second, first, "another CA: new keys");
    assert.equal((JSON.parse(readFileSync(path, "utf8")) as { ca: string }).ca, otherFp);
    writeFileSync(path, first); // the old format: bare keys, CA unknown
    assert.notDeepEqual(loadTicketKeys(path, otherFp, log), first, "keys of unknown provenance are not used");
  });
});
