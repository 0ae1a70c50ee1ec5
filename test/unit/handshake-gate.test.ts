import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HandshakeGate } from "../../src/manager/handshake-gate.js";

/** A clock the test moves, and connections that record what the gate did with them. */
function setup(options: { maxInFlight: number; slotMs?: number; maxWaitMs?: number }) {
  let t = 0;
  const log: string[] = [];
  const gate = new HandshakeGate({ slotMs: 1000, maxWaitMs: 8000, minInFlight: options.maxInFlight, lagBoundMs: 50, ...options, now: () => t });
  const conn = (key: string) => ({ key, start: () => log.push(`start ${key}`), shed: () => log.push(`shed ${key}`) });
  return { gate, log, conn, advance: (ms: number) => (t += ms) };
}

describe("HandshakeGate", () => {
  it("starts at most maxInFlight handshakes; the rest wait and start in arrival order as slots free", () => {
    const { gate, log, conn } = setup({ maxInFlight: 2 });
    for (const k of ["a", "b", "c", "d"]) gate.arrive(conn(k));
    assert.deepEqual(log, ["start a", "start b"]);
    assert.equal(gate.queued, 2);
    gate.finished("b");
    assert.deepEqual(log, ["start a", "start b", "start c"]);
    gate.finished("unknown");
    gate.finished("b");
    assert.equal(log.length, 3, "a key that is not in flight frees nothing");
    gate.finished("a");
    assert.deepEqual(log.slice(3), ["start d"]);
    assert.equal(gate.queued, 0);
  });

  it("a handshake slower than slotMs stops holding its slot, so a stalling peer cannot wedge the gate", () => {
    const { gate, log, conn, advance } = setup({ maxInFlight: 1, slotMs: 1000 });
    gate.arrive(conn("stall"));
    gate.arrive(conn("next"));
    advance(999);
    gate.pump();
    assert.deepEqual(log, ["start stall"]);
    advance(1);
    gate.pump();
    assert.deepEqual(log, ["start stall", "start next"]);
  });

  it("a connection that waited longer than maxWaitMs is shed, even while no slot is free", () => {
    const { gate, log, conn, advance } = setup({ maxInFlight: 1, slotMs: 60_000, maxWaitMs: 8000 });
    gate.arrive(conn("a"));
    gate.arrive(conn("old"));
    advance(5000);
    gate.arrive(conn("young"));
    advance(3001);
    gate.pump();
    assert.deepEqual(log, ["start a", "shed old"]);
    assert.equal(gate.takeShed(), 1);
    assert.equal(gate.takeShed(), 0, "counted once");
    gate.finished("a");
    assert.deepEqual(log.slice(2), ["start young"], "the younger one is still started");
  });

  it("close sheds everything still waiting", () => {
    const { gate, log, conn } = setup({ maxInFlight: 1 });
    for (const k of ["a", "b", "c"]) gate.arrive(conn(k));
    gate.close();
    assert.deepEqual(log, ["start a", "shed b", "shed c"]);
    assert.equal(gate.queued, 0);
  });

  it("a connection ending inside start (gone already) frees its slot without losing the queue's place", () => {
    const log: string[] = [];
    const gate = new HandshakeGate({ minInFlight: 1, maxInFlight: 1, lagBoundMs: 50, slotMs: 1000, maxWaitMs: 8000, now: () => 0 });
    const conn = (key: string, endsAtOnce = false) => ({
      key,
      start: () => {
        log.push(`start ${key}`);
        if (endsAtOnce) gate.finished(key);
      },
      shed: () => log.push(`shed ${key}`),
    });
    gate.arrive(conn("gone", true));
    gate.arrive(conn("b"));
    gate.arrive(conn("c"));
    gate.pump();
    assert.deepEqual(log, ["start gone", "start b"]);
    gate.finished("b");
    assert.deepEqual(log, ["start gone", "start b", "start c"]);
  });

  it("10,000 arrivals stay in order and the queue's storage is reclaimed as it drains", () => {
    const { gate, log, conn } = setup({ maxInFlight: 64 });
    for (let i = 0; i < 10_000; i++) gate.arrive(conn(`w${i}`));
    for (let i = 0; i < 10_000; i++) gate.finished(`w${i}`);
    assert.equal(log.length, 10_000);
    assert.ok(log.every((l, i) => l === `start w${i}`));
    assert.equal(gate.queued, 0);
    assert.equal(gate.active, 0);
  });

  it("the limit grows while connections wait and the loop keeps time, and halves when the loop lags", () => {
    const log: string[] = [];
    const gate = new HandshakeGate({ minInFlight: 4, maxInFlight: 16, lagBoundMs: 50, slotMs: 60_000, maxWaitMs: 60_000, now: () => 0 });
    for (let i = 0; i < 40; i++) gate.arrive({ key: `w${i}`, start: () => log.push(`w${i}`), shed: () => {} });
    assert.equal(log.length, 4, "starts at the minimum");
    gate.observeLag(3);
    gate.pump();
    assert.equal(log.length, 8, "an on-time loop with a queue: one step up");
    for (let i = 0; i < 5; i++) gate.observeLag(0);
    assert.equal(gate.inFlightLimit, 16, "never above the maximum");
    gate.observeLag(400);
    assert.equal(gate.inFlightLimit, 8, "a lagging loop halves it");
    gate.observeLag(400);
    gate.observeLag(400);
    assert.equal(gate.inFlightLimit, 4, "never below the minimum");
  });

  it("while the loop lags, slow handshakes keep their slots: they are slow because of us", () => {
    const { gate, log, conn, advance } = setup({ maxInFlight: 1, slotMs: 250 });
    gate.arrive(conn("a"));
    gate.arrive(conn("b"));
    gate.observeLag(400);
    advance(1000);
    gate.pump();
    assert.deepEqual(log, ["start a"], "congested: a still counts");
    gate.observeLag(0);
    gate.pump();
    assert.deepEqual(log, ["start a", "start b"], "the loop keeps time again: a is waiting on its peer");
  });
});
