import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HealthEvent } from "../../src/core/registry.js";
import { describeTransition, describeWorkerSummary } from "../../src/mcp/notifications.js";
import { TransitionDigest } from "../../src/mcp/transition-digest.js";

const event = (worker: string, to: HealthEvent["to"]): HealthEvent => ({ seq: 0, at: 0, worker, from: "healthy", to, reasons: [] });

describe("TransitionDigest", () => {
  it("passes a burst one by one, then holds the rest for one digest counted by state", () => {
    const d = new TransitionDigest(10, 3, 0);
    const passed = ["a", "b", "c", "d", "e"].map((w, i) => d.offer(event(w, i === 4 ? "unhealthy" : "healthy"), 0));
    assert.deepEqual(passed, [true, true, true, false, false]);
    assert.deepEqual(d.flush(0), { digest: { count: 2, byState: { healthy: 1, unhealthy: 1 }, someWorkers: ["d", "e"] }, workers: [] });
    assert.equal(d.flush(0).digest, null, "a digest is sent once");
  });

  it("refills at its rate, and holds while a digest is pending so order within a second is kept", () => {
    const d = new TransitionDigest(10, 1, 0);
    assert.equal(d.offer(event("a", "healthy"), 0), true);
    assert.equal(d.offer(event("b", "healthy"), 50), false, "no token yet");
    assert.equal(d.offer(event("c", "healthy"), 500), false, "a token is back, but a digest is pending");
    assert.equal(d.flush(500).digest?.count, 2);
    assert.equal(d.offer(event("d", "healthy"), 600), true);
  });

  it("a storm of 10,000 transitions becomes the burst plus one digest", () => {
    const d = new TransitionDigest(10, 30, 0);
    let sent = 0;
    for (let i = 0; i < 10_000; i++) if (d.offer(event(`w${i}`, "healthy"), i / 10)) sent++;
    const held = d.flush(1000).digest;
    assert.equal(sent + (held?.count ?? 0), 10_000, "nothing is lost: told or counted");
    assert.ok(sent <= 30 + 10 * 1, `${sent} told one by one within one second`);
    assert.equal(held?.someWorkers.length, 10, "a digest names a few, not all");
  });

  it("one flapping worker is summed up on its own, and another worker's transition is still told by itself", () => {
    const d = new TransitionDigest(10, 30, 0, { burst: 3, everyMs: 10_000 });
    let told = 0;
    let counted = 0;
    // The flapper: 20 transitions a second for 30 s, flushed every second as the notifier does.
    const others: boolean[] = [];
    for (let ms = 0; ms < 30_000; ms += 50) {
      if (d.offer(event("flapper", ms % 100 === 0 ? "unhealthy" : "healthy"), ms)) told++;
      // Every 2 s another worker changes state once.
      if (ms % 2000 === 1000) others.push(d.offer(event(`honest${ms}`, "degraded"), ms));
      if (ms % 1000 === 950) {
        const { digest, workers } = d.flush(ms);
        assert.equal(digest, null, "the flapper never fills the fleet digest");
        for (const w of workers) {
          assert.equal(w.worker, "flapper");
          counted += w.count;
          told++;
        }
      }
    }
    assert.ok(others.every(Boolean), "every other worker's transition is told one by one");
    // 3 at once, then one summary each time its budget refills: one per 10 s.
    assert.ok(told >= 4 && told <= 3 + 3, `the flapper took ${told} notifications in 30 s`);
    for (const w of d.flush(60_000).workers) counted += w.count;
    assert.equal(counted + 3, 600, `every transition is told alone (3) or counted in a summary (${counted}), none lost`);
  });

  it("a worker's quick real sequence (healthy → degraded → unhealthy) is told in full", () => {
    const d = new TransitionDigest(10, 30, 0);
    assert.deepEqual(
      (["degraded", "unhealthy", "healthy"] as const).map((to, i) => d.offer(event("w", to), i * 100)),
      [true, true, true],
    );
    assert.equal(d.offer(event("w", "unhealthy"), 400), false, "the fourth within seconds waits for its summary");
    assert.deepEqual(d.flush(1000).workers, [], "not before its budget is back");
    assert.equal(d.offer(event("w", "healthy"), 2000), false, "counted with the pending one, in order");
    const later = d.flush(11_000).workers;
    assert.deepEqual(later, [{ worker: "w", count: 2, byState: { unhealthy: 1, healthy: 1 }, latest: "healthy", spanMs: 10_600 }]);
    assert.match(describeWorkerSummary(later[0]!).message, /^worker w changed state 2 more times in 10\.6s \(1 → unhealthy, 1 → healthy\), now healthy/);
  });

  it("a worker summary without a fleet token joins the digest, and forgets workers whose budget is full again", () => {
    const d = new TransitionDigest(10, 1, 0, { burst: 1, everyMs: 1000 });
    assert.equal(d.offer(event("a", "healthy"), 0), true);
    assert.equal(d.offer(event("a", "unhealthy"), 10), false);
    assert.equal(d.offer(event("b", "unhealthy"), 20), false, "no fleet token");
    const flushed = d.flush(1000);
    assert.deepEqual(flushed.workers, []);
    assert.deepEqual(flushed.digest, { count: 2, byState: { unhealthy: 2 }, someWorkers: ["b", "a"] });
  });
});

describe("describeTransition", () => {
  const e = (from: HealthEvent["from"], to: HealthEvent["to"], codes: string[] = []): HealthEvent => ({
    seq: 1,
    at: 0,
    worker: "w",
    from,
    to,
    reasons: codes.map((code) => ({ code, message: code === "returned_after_restart" ? "back after the manager restart" : code }) as never),
  });

  it("says a worker is back after a manager restart, not that it recovered", () => {
    assert.deepEqual(describeTransition(e("healthy", "healthy", ["returned_after_restart"])), {
      level: "info",
      message: "worker w is back after the manager restart (healthy)",
    });
    assert.deepEqual(describeTransition(e("healthy", "degraded", ["returned_after_restart", "memory_pressure"])), {
      level: "notice",
      message: "worker w is back after the manager restart (degraded: memory_pressure)",
    });
    assert.equal(describeTransition(e("unhealthy", "healthy")).message, "worker w recovered (was unhealthy)");
  });

  it("tells forgetting and revocation apart from going offline", () => {
    assert.match(describeTransition(e("offline", "offline", ["forgotten"])).message, /^worker w was forgotten: removed from the registry/);
    assert.match(describeTransition(e("healthy", "offline", ["revoked"])).message, /^worker w is offline: its certificate was revoked/);
  });
});
