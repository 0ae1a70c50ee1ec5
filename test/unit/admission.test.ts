import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SessionAdmission, type Candidate } from "../../src/manager/admission.js";
import { DEFAULT_LIMITS } from "../../src/manager/limits.js";
import { SessionRate } from "../../src/manager/session-rate.js";

describe("SessionRate", () => {
  it("lets a burst through, then one per refill interval", () => {
    let t = 0;
    const rate = new SessionRate(6, 3, 100, () => t); // 6 a minute: one every 10 s
    assert.deepEqual([1, 2, 3, 4].map(() => rate.take("a")), [true, true, true, false]);
    assert.equal(rate.take("b"), true, "another id has its own bucket");
    t += 9_999;
    assert.equal(rate.take("a"), false);
    t += 1;
    assert.equal(rate.take("a"), true, "one token back after 10 s");
    assert.equal(rate.take("a"), false);
  });

  it("stays within its bound of ids: refilled buckets expire, and when full the least recently used goes", () => {
    let t = 0;
    const rate = new SessionRate(60, 2, 3, () => t);
    for (const id of ["a", "b", "c"]) rate.take(id);
    rate.take("a"); // a is now the most recently used, and empty
    rate.take("d");
    assert.equal(rate.size, 3);
    assert.equal(rate.take("a"), false, "a kept its empty bucket; b, the least recently used, made room");
    t += 2_000; // 60 a minute: 2 s refill a burst of 2
    rate.expire();
    assert.equal(rate.size, 0, "refilled buckets are the same as none");
  });

  it("0 a minute means no limit", () => {
    const rate = new SessionRate(0, 0, 1);
    for (let i = 0; i < 100; i++) assert.equal(rate.take("x"), true);
    assert.equal(rate.size, 0);
  });
});

describe("SessionAdmission", () => {
  const worker = { role: "worker" as const, id: "w1", fleet: "f" };
  const base: Candidate = { identity: worker, serialNumber: "01", address: "10.0.0.1", sessions: 0, pendingFromAddress: 0 };
  const limits = { ...DEFAULT_LIMITS, maxSessions: 10, maxPendingPerAddress: 2, sessionBurst: 2, sessionsPerMinute: 1 };

  it("refuses in order: revoked, wrong role or fleet, session cap, pending per address, then the identity's rate", () => {
    const revoked = new Set(["dead"]);
    const a = new SessionAdmission(limits, "f", (s) => revoked.has(s), () => 0);
    const code = (c: Partial<Candidate>) => a.judge({ ...base, ...c })?.code ?? null;
    assert.equal(code({ serialNumber: "dead", identity: null }), 4004);
    assert.equal(code({ identity: null }), 4003);
    assert.equal(code({ identity: { ...worker, role: "manager" } }), 4003);
    assert.equal(code({ identity: { ...worker, fleet: "other" } }), 4003);
    assert.equal(code({ sessions: 10 }), 4009);
    assert.equal(code({ pendingFromAddress: 2 }), 4012);
    assert.equal(code({}), null);
    assert.equal(code({}), null);
    assert.equal(code({}), 4006, "the third session at once is over the burst of 2");
    const refusal = a.judge(base)!;
    assert.equal(refusal.kind, "session-rate");
    assert.match(refusal.detail, /over 2 new sessions, then 1\/min/);
  });

  it("a refusal for another cause uses up no token of the identity's rate", () => {
    const a = new SessionAdmission(limits, "f", () => false, () => 0);
    for (let i = 0; i < 5; i++) assert.equal(a.judge({ ...base, pendingFromAddress: 2 })?.code, 4012);
    assert.equal(a.judge(base), null);
    assert.equal(a.judge(base), null);
  });
});
