import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HealthEvent } from "../../src/core/registry.js";
import { TransitionDigest } from "../../src/mcp/transition-digest.js";

const event = (worker: string, to: HealthEvent["to"]): HealthEvent => ({ seq: 0, at: 0, worker, from: "healthy", to, reasons: [] });

describe("TransitionDigest", () => {
  it("passes a burst one by one, then holds the rest for one digest counted by state", () => {
    const d = new TransitionDigest(10, 3, 0);
    const passed = ["a", "b", "c", "d", "e"].map((w, i) => d.offer(event(w, i === 4 ? "unhealthy" : "healthy"), 0));
    assert.deepEqual(passed, [true, true, true, false, false]);
    assert.deepEqual(d.flush(), { count: 2, byState: { healthy: 1, unhealthy: 1 }, someWorkers: ["d", "e"] });
    assert.equal(d.flush(), null, "a digest is sent once");
  });

  it("refills at its rate, and holds while a digest is pending so order within a second is kept", () => {
    const d = new TransitionDigest(10, 1, 0);
    assert.equal(d.offer(event("a", "healthy"), 0), true);
    assert.equal(d.offer(event("b", "healthy"), 50), false, "no token yet");
    assert.equal(d.offer(event("c", "healthy"), 500), false, "a token is back, but a digest is pending");
    assert.equal(d.flush()?.count, 2);
    assert.equal(d.offer(event("d", "healthy"), 600), true);
  });

  it("a storm of 10,000 transitions becomes the burst plus one digest", () => {
    const d = new TransitionDigest(10, 30, 0);
    let sent = 0;
    for (let i = 0; i < 10_000; i++) if (d.offer(event(`w${i}`, "healthy"), i / 10)) sent++;
    const held = d.flush();
    assert.equal(sent + (held?.count ?? 0), 10_000, "nothing is lost: told or counted");
    assert.ok(sent <= 30 + 10 * 1, `${sent} told one by one within one second`);
    assert.equal(held?.someWorkers.length, 10, "a digest names a few, not all");
  });
});
