import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatDuration, parseDuration, duration } from "../../src/config/duration.js";
import { History } from "../../src/core/history.js";
import { Backoff } from "../../src/worker/backoff.js";
import { classifyError, classifyHttpStatus, describeClose } from "../../src/worker/failures.js";
import { nextInPhase } from "../../src/worker/link.js";
import { NOT_A_MANAGER } from "../../src/tls/contexts.js";
import { identityFromSubjectAltName, identityUri, parseIdentityUri } from "../../src/pki/identity.js";

describe("durations", () => {
  it("reads 500ms, 2s, 1.5s, 1m, 1h, 7d", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("2s"), 2000);
    assert.equal(parseDuration("1.5s"), 1500);
    assert.equal(parseDuration("1m"), 60_000);
    assert.equal(parseDuration("1h"), 3_600_000);
    assert.equal(parseDuration(" 7d "), 7 * 86_400_000);
  });
  it("refuses a bare number with a hint, and nonsense", () => {
    assert.throws(() => parseDuration("5"), /add a unit, e\.g\. 5s/);
    assert.throws(() => parseDuration("fast"), /not a duration/);
    assert.throws(() => parseDuration("-1s"), /not a duration/);
  });
  it("validates bounds through the zod field", () => {
    assert.equal(duration({ min: 100 }).parse("1s"), 1000);
    assert.match(duration({ min: 100 }).safeParse("10ms").error!.issues[0]!.message, /at least 100ms/);
  });
  it("formats for people", () => {
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(3100), "3.1s");
    assert.equal(formatDuration(90_000), "1.5m");
  });
});

describe("history ring", () => {
  it("keeps the newest items, oldest first", () => {
    const h = new History<number>(3);
    for (let i = 1; i <= 5; i++) h.push(i);
    assert.deepEqual(h.toArray(), [3, 4, 5]);
    assert.equal(h.size, 3);
  });
});

describe("full-jitter backoff", () => {
  it("grows from 0.5 s to a 30 s ceiling, each delay uniform in [0, ceiling]", () => {
    const b = new Backoff(500, 30_000, () => 1);
    const delays = Array.from({ length: 10 }, () => b.next());
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    const zero = new Backoff(500, 30_000, () => 0);
    assert.equal(zero.next(), 0);
  });
  it("a delay may be capped lower for one call, while the ceiling keeps growing", () => {
    const b = new Backoff(500, 30_000, () => 1);
    const delays = Array.from({ length: 7 }, () => b.next(8000));
    assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    assert.equal(b.next(), 30_000, "uncapped, the ceiling it reached meanwhile");
  });
  it("resets after a good session and jumps to the ceiling after a permanent refusal", () => {
    const b = new Backoff(500, 30_000, () => 1);
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 500);
    b.toCap();
    assert.equal(b.next(), 30_000);
  });
  it("spreads delays (real randomness stays within bounds)", () => {
    const b = new Backoff();
    for (let i = 0; i < 200; i++) {
      const ceiling = b.ceilingMs;
      const d = b.next();
      assert.ok(d >= 0 && d <= ceiling);
    }
  });
});

describe("connection failure classification", () => {
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });
  it("tells an unreachable manager from a refused certificate from a rejected manager", () => {
    assert.equal(classifyError(err("ECONNREFUSED"), false).kind, "unreachable");
    assert.equal(classifyError(err("EHOSTUNREACH"), false).kind, "unreachable");
    assert.equal(classifyError(err("ECONNRESET", "socket hang up"), false).kind, "unreachable");
    assert.equal(classifyError(err("ECONNRESET", "socket hang up"), true).kind, "certificate_refused");
    assert.equal(classifyError(err("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "alert certificate required"), true).kind, "certificate_refused");
    assert.equal(classifyError(err("ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE"), false).kind, "certificate_refused");
    assert.equal(classifyError(err("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), false).kind, "manager_rejected");
    assert.equal(classifyError(err(NOT_A_MANAGER), false).kind, "manager_rejected");
    assert.equal(classifyHttpStatus(404).kind, "http_refused");
    assert.match(describeClose(4002, "").message, /4002 IDENTITY_MISMATCH/);
  });
});

describe("identity in certificates", () => {
  it("round-trips the SPIFFE-style URI and reads it from Node's subjectAltName text", () => {
    const id = { fleet: "lab", role: "worker" as const, id: "w1" };
    assert.deepEqual(parseIdentityUri(identityUri(id)), id);
    assert.deepEqual(identityFromSubjectAltName("DNS:w1.lan, URI:spiffe://lab/worker/w1"), id);
    assert.deepEqual(identityFromSubjectAltName('URI:"spiffe://lab/worker/w1"'), id);
  });
  it("refuses malformed, foreign and ambiguous identities", () => {
    assert.equal(identityFromSubjectAltName(undefined), null);
    assert.equal(identityFromSubjectAltName("URI:spiffe://lab/admin/w1"), null);
    assert.equal(identityFromSubjectAltName("URI:https://lab/worker/w1"), null);
    assert.equal(identityFromSubjectAltName("URI:spiffe://lab/worker/W_1"), null);
    assert.equal(identityFromSubjectAltName("URI:spiffe://lab/worker/a, URI:spiffe://lab/worker/b"), null);
  });
});

describe("heartbeat pacing", () => {
  it("keeps the configured interval while the fleet is within the budget, and lengthens it in steps beyond", async () => {
    const { pacedInterval } = await import("../../src/core/pace.js");
    assert.equal(pacedInterval({ baseMs: 1000, budgetPerSecond: 2000, connected: 1500 }), 1000);
    assert.equal(pacedInterval({ baseMs: 1000, budgetPerSecond: 2000, connected: 2001 }), 1500);
    assert.equal(pacedInterval({ baseMs: 1000, budgetPerSecond: 2000, connected: 10_000 }), 5000);
    assert.equal(pacedInterval({ baseMs: 1000, budgetPerSecond: 0, connected: 10_000 }), 1000, "0: no budget");
    assert.equal(pacedInterval({ baseMs: 300, budgetPerSecond: 2000, connected: 1 }), 300, "a fast base within budget is kept, not rounded to a step");
  });
  it("lengthens at once, shortens only when the fleet clearly shrank", async () => {
    const { shouldRepace } = await import("../../src/core/pace.js");
    assert.equal(shouldRepace(1000, 1500), true);
    assert.equal(shouldRepace(5000, 4500), false, "hovering near a step");
    assert.equal(shouldRepace(5000, 3500), true);
    assert.equal(shouldRepace(1000, 1000), false);
  });
});

describe("nextInPhase (a worker's heartbeat phase across a pace change)", () => {
  it("lengthened: one new interval after the last heartbeat", () => {
    assert.equal(nextInPhase(10_000, 5000, 11_000), 4000);
  });
  it("shortened: the next multiple of the new interval after the last heartbeat, never in the past", () => {
    assert.equal(nextInPhase(10_000, 1000, 13_400), 600);
    assert.equal(nextInPhase(10_000, 1000, 13_000), 1000);
  });
  it("workers whose last heartbeats were spread stay spread: a shared instant does not line them up", () => {
    const now = 100_000;
    const waits = Array.from({ length: 50 }, (_, i) => nextInPhase(now - 5000 + i * 100, 2000, now));
    assert.equal(new Set(waits).size, 20, "every 100 ms slot of the new 2 s interval is used");
    assert.ok(waits.every((w) => w > 0 && w <= 2000));
  });
});
