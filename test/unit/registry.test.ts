import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY, sameReasons, type HealthPolicy, type HealthState } from "../../src/core/health.js";
import { FleetHistory } from "../../src/core/history.js";
import { Registry, type HealthEvent, type SessionInfo } from "../../src/core/registry.js";
import { EMPTY_METRICS, type MetricsSummary } from "../../src/protocol/metrics.js";

const policy: HealthPolicy = { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000, missedHeartbeats: 3 };

function session(id: string, sessionId: string, extra: Partial<SessionInfo> = {}): SessionInfo {
  return {
    id,
    sessionId,
    hostname: `${id}.lan`,
    agentVersion: "1.0.0",
    labels: {},
    platform: { os: "linux", arch: "x64", release: "6.1" },
    address: "10.0.0.1",
    certNotAfter: null,
    ...extra,
  };
}

/**
 * The registry driven as the manager drives it: the clock moves in 100 ms ticks, and a live worker beats every
 * interval. Large jumps are reserved for the stall tests, because a jump is exactly what a stall looks like.
 */
class Harness {
  readonly clock = new FakeClock();
  readonly events: HealthEvent[] = [];
  readonly stalls: number[] = [];
  readonly registry: Registry;
  private readonly beating = new Map<string, { sessionId: string; every: number; next: number; seq: number }>();

  constructor(p: HealthPolicy = policy) {
    this.registry = new Registry({
      clock: this.clock,
      policy: p,
      historyLimit: 50,
      onEvent: (e) => this.events.push(e),
      onStall: (ms) => this.stalls.push(ms),
    });
  }

  connect(id: string, sessionId = `${id}-s1`, extra: Partial<SessionInfo> = {}) {
    const r = this.registry.sessionOpened(session(id, sessionId, extra));
    this.beating.set(id, { sessionId, every: policy.heartbeatIntervalMs, next: this.clock.monotonic() + policy.heartbeatIntervalMs, seq: 0 });
    return r;
  }

  /** Stop heartbeats from `id` without closing its socket (SIGSTOP, partition). */
  freeze(id: string) {
    this.beating.delete(id);
  }

  resume(id: string, sessionId = `${id}-s1`) {
    this.beating.set(id, { sessionId, every: policy.heartbeatIntervalMs, next: this.clock.monotonic(), seq: 100 });
  }

  beat(id: string, metrics: MetricsSummary = EMPTY_METRICS) {
    const b = this.beating.get(id);
    return this.registry.heartbeat(id, b?.sessionId ?? `${id}-s1`, b ? b.seq++ : 0, metrics);
  }

  /** Let `ms` pass in 100 ms ticks, with live workers beating on schedule. */
  run(ms: number) {
    const end = this.clock.monotonic() + ms;
    while (this.clock.monotonic() < end) {
      this.clock.advance(100);
      for (const [id, b] of this.beating) {
        if (this.clock.monotonic() >= b.next) {
          this.registry.heartbeat(id, b.sessionId, b.seq++, EMPTY_METRICS);
          b.next += b.every;
        }
      }
      this.registry.tick();
    }
  }

  state(id: string): HealthState | undefined {
    return this.registry.get(id)?.state;
  }

  path(id: string): Array<HealthState | null> {
    return this.events.filter((e) => e.worker === id).map((e) => e.to);
  }
}

describe("health state machine (docs/architecture.md, fixed decision 4) with a fake clock", () => {
  let h: Harness;
  beforeEach(() => (h = new Harness()));

  it("new session → healthy, recorded as one event from nothing", () => {
    h.connect("w1");
    assert.equal(h.state("w1"), "healthy");
    assert.deepEqual(h.events.map((e) => [e.from, e.to]), [[null, "healthy"]]);
    h.run(10_000);
    assert.equal(h.events.length, 1, "steady heartbeats produce no events");
  });

  it("healthy → degraded (heartbeat late) → unhealthy (heartbeats missed) → healthy when beats resume", () => {
    h.connect("w1");
    h.run(2000);
    h.freeze("w1");
    h.run(2000);
    assert.equal(h.state("w1"), "healthy", "2 s of silence at a 1 s interval: within jitter");
    h.run(100); // past 2 intervals: one beat fully missed
    assert.equal(h.state("w1"), "degraded");
    assert.equal(h.registry.get("w1")!.reasons[0]!.code, "heartbeat_late");
    h.run(1000); // past 3 intervals
    assert.equal(h.state("w1"), "unhealthy");
    assert.equal(h.registry.get("w1")!.reasons[0]!.code, "heartbeats_missed");
    assert.equal(h.registry.get("w1")!.connected, true, "half-open: the socket is still there");
    h.resume("w1");
    h.run(100);
    assert.equal(h.state("w1"), "healthy");
    assert.deepEqual(h.path("w1"), ["healthy", "degraded", "unhealthy", "healthy"]);
  });

  it("unhealthy for missed heartbeats exactly when the bound passes, not a tick earlier", () => {
    h.connect("w1");
    h.freeze("w1");
    h.run(3000);
    assert.notEqual(h.state("w1"), "unhealthy", "at 3.0 s the bound has not been exceeded");
    h.run(100);
    assert.equal(h.state("w1"), "unhealthy");
  });

  it("healthy → unhealthy at once when the socket drops without goodbye", () => {
    h.connect("w1");
    h.run(1000);
    assert.ok(h.registry.sessionClosed("w1", "w1-s1", "closed without a close frame (1006)"));
    assert.equal(h.state("w1"), "unhealthy");
    const e = h.events.at(-1)!;
    assert.deepEqual([e.from, e.to, e.reasons[0]!.code], ["healthy", "unhealthy", "connection_lost"]);
    assert.equal(h.registry.get("w1")!.connected, false);
    h.run(60_000);
    assert.equal(h.state("w1"), "unhealthy", "stays until it returns");
  });

  it("degraded → unhealthy when the socket drops", () => {
    h.connect("w1");
    h.beat("w1", { ...EMPTY_METRICS, errors: [{ collector: "fsSize", code: "TIMEOUT" }] });
    assert.equal(h.state("w1"), "degraded");
    h.registry.sessionClosed("w1", "w1-s1", "reset");
    assert.equal(h.state("w1"), "unhealthy");
  });

  it("healthy → offline on goodbye; the close that follows changes nothing", () => {
    h.connect("w1");
    assert.ok(h.registry.goodbye("w1", "w1-s1", "SIGTERM"));
    assert.equal(h.state("w1"), "offline");
    assert.equal(h.registry.get("w1")!.reasons[0]!.message, "goodbye: SIGTERM");
    assert.equal(h.registry.sessionClosed("w1", "w1-s1", "1000"), false);
    h.run(60_000);
    assert.equal(h.state("w1"), "offline");
  });

  it("degraded → offline on goodbye", () => {
    h.connect("w1");
    h.beat("w1", { ...EMPTY_METRICS, errors: [{ collector: "mem", code: "FAILED" }] });
    h.registry.goodbye("w1", "w1-s1", "");
    assert.equal(h.state("w1"), "offline");
  });

  it("unhealthy → healthy and offline → healthy when the worker returns with a new session", () => {
    h.connect("w1");
    h.registry.sessionClosed("w1", "w1-s1", "reset");
    h.connect("w1", "w1-s2");
    assert.equal(h.state("w1"), "healthy");
    h.registry.goodbye("w1", "w1-s2", "restart");
    h.connect("w1", "w1-s3");
    assert.deepEqual(h.path("w1"), ["healthy", "unhealthy", "healthy", "offline", "healthy"]);
  });

  it("degraded → healthy when the warning clears", () => {
    h.connect("w1");
    h.beat("w1", { ...EMPTY_METRICS, errors: [{ collector: "fsSize", code: "TIMEOUT" }] });
    assert.equal(h.state("w1"), "degraded");
    h.beat("w1", EMPTY_METRICS);
    assert.equal(h.state("w1"), "healthy");
  });

  it("lists every warning as a reason, and records a change of reasons within degraded", () => {
    h = new Harness({ ...policy, pressurePercent: 90 });
    h.connect("w1");
    h.beat("w1", { ...EMPTY_METRICS, mem: 97 });
    assert.deepEqual(h.registry.get("w1")!.reasons.map((r) => r.code), ["memory_pressure"]);
    h.beat("w1", {
      ...EMPTY_METRICS,
      mem: 97,
      disk: { mount: "/var", used: 99 },
      battery: { percent: 4, charging: false },
      errors: [{ collector: "cpuTemperature", code: "TIMEOUT" }],
    });
    const v = h.registry.get("w1")!;
    assert.equal(v.state, "degraded");
    assert.deepEqual(v.reasons.map((r) => r.code), ["memory_pressure", "disk_pressure", "battery_low", "collector_errors"]);
    assert.match(v.reasons[1]!.message, /\/var 99% used/);
    const degradedEvents = h.events.filter((e) => e.to === "degraded");
    assert.equal(degradedEvents.length, 2, "the reason set changed once: one more event");
    // Same reasons, other figures: no new event, but the current view shows the current figures.
    h.beat("w1", { ...EMPTY_METRICS, mem: 98, disk: { mount: "/var", used: 99 }, battery: { percent: 3, charging: false }, errors: [{ collector: "cpuTemperature", code: "TIMEOUT" }] });
    assert.equal(h.events.filter((e) => e.to === "degraded").length, 2);
    const now = h.registry.get("w1")!.reasons;
    assert.equal(now.find((r) => r.code === "memory_pressure")!.message, "memory pressure: 98% used");
    assert.equal(now.find((r) => r.code === "battery_low")!.message, "battery low: 3% and discharging");
    assert.match(h.events.at(-1)!.reasons[0]!.message, /97% used/, "the event keeps the figures it was recorded with");
  });

  it("a certificate's remaining time counts down in the current view and turns into expired, with no new event", () => {
    h.connect("w1", "s1", { certNotAfter: h.clock.wall() + 13.9 * 86_400_000 });
    assert.equal(h.registry.get("w1")!.reasons[0]!.message, "certificate expires in 13.9d");
    const eventsBefore = h.events.length;
    // Days pass; one jump looks like a manager stall, which only restarts the silence count.
    h.clock.advance(2 * 86_400_000);
    h.registry.tick();
    h.beat("w1");
    assert.equal(h.registry.get("w1")!.reasons[0]!.message, "certificate expires in 11.9d");
    h.clock.advance(12 * 86_400_000);
    h.registry.tick();
    h.beat("w1");
    assert.equal(h.registry.get("w1")!.reasons[0]!.message, "certificate expired");
    assert.equal(h.events.length, eventsBefore, "the code stayed cert_expiring: no event");
  });

  it("a charging battery and pressure warnings turned off (0) are not warnings", () => {
    h = new Harness({ ...policy, pressurePercent: 0 });
    h.connect("w1");
    h.beat("w1", { ...EMPTY_METRICS, mem: 100, disk: { mount: "/", used: 100 }, battery: { percent: 2, charging: true } });
    assert.equal(h.state("w1"), "healthy");
  });

  it("reconnect flapping is degraded; it clears once the window passes", () => {
    for (let i = 0; i < 4; i++) {
      h.connect("w1", `s${i}`);
      h.run(1000);
    }
    assert.equal(h.state("w1"), "degraded");
    assert.equal(h.registry.get("w1")!.reasons[0]!.code, "reconnect_flapping");
    h.run(policy.flapWindowMs);
    assert.equal(h.state("w1"), "healthy");
  });

  it("a certificate that expires soon is degraded with that reason", () => {
    h.connect("w1", "s1", { certNotAfter: h.clock.wall() + 3 * 86_400_000 });
    assert.equal(h.state("w1"), "degraded");
    assert.match(h.registry.get("w1")!.reasons[0]!.message, /certificate expires in/);
  });

  it("a replaced session's messages and close are ignored; the new session is current", () => {
    h.connect("w1", "old");
    const { replaced } = h.connect("w1", "new");
    assert.equal(replaced, "old");
    assert.equal(h.registry.heartbeat("w1", "old", 1, EMPTY_METRICS), false);
    assert.equal(h.registry.sessionClosed("w1", "old", "replaced"), false);
    assert.equal(h.registry.goodbye("w1", "old", "bye"), false);
    assert.equal(h.state("w1"), "healthy");
    assert.ok(h.registry.isConnected("w1", "new"));
  });

  it("two hosts displacing each other with one identity: degraded, naming the addresses; it clears when they stop", () => {
    h.connect("twin", "a1", { address: "10.0.0.1" });
    for (let i = 2; i <= 4; i++) {
      h.run(1000);
      h.connect("twin", `s${i}`, { address: i % 2 ? "10.0.0.1" : "10.0.0.2" });
    }
    const v = h.registry.get("twin")!;
    assert.equal(v.state, "degraded");
    const conflict = v.reasons.find((r) => r.code === "identity_conflict");
    assert.match(conflict!.message, /identity in use by two hosts: sessions replaced each other 3 times in 1m \(from 10\.0\.0\.1, 10\.0\.0\.2\)/);
    h.run(policy.flapWindowMs + 1000);
    assert.equal(h.state("twin"), "healthy");
  });

  it("one replacement (a restart over a half-open session) is not a conflict", () => {
    h.connect("w1", "old");
    h.connect("w1", "new");
    assert.equal(h.state("w1"), "healthy");
  });

  it("a manager stall (clock jumps 60 s, nothing in between) marks no live worker unhealthy", () => {
    h.connect("w1");
    h.connect("w2");
    h.run(2000);
    h.clock.advance(60_000); // SIGSTOP of the manager: no ticks, no messages
    h.registry.tick();
    assert.equal(h.stalls.length, 1);
    assert.ok(h.stalls[0]! >= 60_000);
    assert.equal(h.state("w1"), "healthy");
    assert.equal(h.state("w2"), "healthy");
    // After the stall, live workers keep beating; one that died during it is found within the bound.
    h.freeze("w2");
    h.run(3100);
    assert.equal(h.state("w1"), "healthy");
    assert.equal(h.state("w2"), "unhealthy");
    assert.ok(!h.events.some((e) => e.worker === "w1" && e.to !== "healthy"));
  });

  it("the event history is bounded and keeps the newest", () => {
    h.connect("w1");
    for (let i = 0; i < 100; i++) {
      h.registry.sessionClosed("w1", `w1-s${i === 0 ? 1 : i}`, "x");
      h.connect("w1", `w1-s${i + 1}`);
    }
    const all = h.registry.events();
    assert.equal(all.length, 50);
    assert.equal(all.at(-1)!.seq, h.events.at(-1)!.seq);
    assert.deepEqual(h.registry.events({ afterSeq: all.at(-2)!.seq }).length, 1);
    assert.equal(h.registry.events({ worker: "nobody" }).length, 0);
    assert.equal(h.registry.events({ limit: 3 }).length, 3);
  });

  it("reports sessions silent far past the bound, so the shell can free them", () => {
    h.connect("w1");
    h.connect("w2");
    h.freeze("w2");
    h.run(5000);
    assert.deepEqual(h.registry.silentSessions(4000).map((s) => s.id), ["w2"]);
  });
});

describe("registry persistence across manager restarts", () => {
  it("exports known workers and events, and restores them without raising alarms", () => {
    const before = new Harness();
    before.connect("up");
    before.connect("gone");
    before.registry.sessionClosed("gone", "gone-s1", "reset");
    before.connect("bye");
    before.registry.goodbye("bye", "bye-s1", "SIGTERM");
    const snapshot = before.registry.export();

    const after = new Harness();
    after.registry.restore(snapshot, 5000);
    assert.deepEqual(after.registry.events().map((e) => e.seq), before.registry.events().map((e) => e.seq));
    assert.equal(after.state("up"), "healthy", "keeps its recorded state during the grace period");
    assert.equal(after.registry.get("up")!.connected, false);
    assert.equal(after.events.length, 0, "restoring records no events");

    // "up" comes back in time: its first session is recorded even though the state is the same.
    after.run(1000);
    after.connect("up", "up-s2");
    const confirmed = after.events.at(-1)!;
    assert.deepEqual([confirmed.worker, confirmed.from, confirmed.to], ["up", "healthy", "healthy"]);
    assert.deepEqual(confirmed.reasons.map((r) => r.code), ["returned_after_restart"], "said to be back after the restart");
    assert.deepEqual(after.registry.get("up")!.reasons, [], "which is news, not a reason for its state");
    assert.ok(confirmed.seq > before.registry.events().at(-1)!.seq, "event numbers continue");

    // The others do not: after the grace period, the silent one is unhealthy, the one that said goodbye stays offline.
    after.run(4100);
    assert.equal(after.state("gone"), "unhealthy");
    assert.equal(after.registry.get("gone")!.reasons[0]!.message, "not seen since manager start");
    assert.equal(after.state("bye"), "offline");
    assert.equal(after.state("up"), "healthy");
  });
});

describe("the restart grace while the fleet is still coming back", () => {
  const restoredFleet = (n: number) => {
    const before = new Harness();
    for (let i = 0; i < n; i++) before.connect(`w${i}`);
    const after = new Harness();
    after.registry.restore(before.registry.export(), 3000);
    return after;
  };

  it("stretches while restored workers keep returning, and ends a third of the grace after the last one", () => {
    const h = restoredFleet(4);
    h.run(2500);
    h.connect("w0", "w0-s2");
    h.run(600); // 3100: the grace is over, but w0 came back 600 ms ago
    assert.equal(h.state("w1"), "healthy", "not judged while the fleet is still returning");
    assert.equal(h.registry.get("w1")!.connected, false);
    h.run(500); // 3600: 1100 ms since the last return, more than a third of the 3 s grace
    assert.equal(h.state("w1"), "unhealthy");
    assert.equal(h.registry.get("w1")!.reasons[0]!.message, "not seen since manager start");
    assert.equal(h.state("w0"), "healthy");
  });

  it("ends on time when nobody returned late, and never later than four times the grace", () => {
    const quiet = restoredFleet(2);
    quiet.run(500);
    quiet.connect("w0", "w0-s2");
    quiet.run(2600); // 3100
    assert.equal(quiet.state("w1"), "unhealthy", "a return early in the grace does not stretch it");

    const n = 50;
    const busy = restoredFleet(n);
    const missing = `w${n - 1}`;
    // One worker back every 300 ms, for longer than the stretch allows; the last one never comes.
    let judgedAt: number | null = null;
    for (let i = 0; i < n - 1; i++) {
      busy.run(300);
      busy.connect(`w${i}`, `w${i}-s2`);
      if (judgedAt === null && busy.state(missing) === "unhealthy") judgedAt = busy.clock.monotonic();
    }
    assert.ok(judgedAt !== null, "judged although others were still returning");
    assert.ok(judgedAt >= 12_000 && judgedAt <= 12_300, `judged at ${judgedAt} ms: four times the 3 s grace`);
  });
});

describe("registry deadlines between full checks", () => {
  it("a silent worker among many beating ones turns degraded and unhealthy on the first 100 ms tick past each bound", () => {
    const clock = new FakeClock();
    const events: HealthEvent[] = [];
    const r = new Registry({ clock, policy, onEvent: (e) => events.push(e) });
    for (let i = 0; i < 50; i++) r.sessionOpened(session(`w${i}`, `s${i}`));
    r.tick();
    events.length = 0;
    const seen: Array<{ at: number; to: HealthState }> = [];
    for (let t = 100; t <= 4000; t += 100) {
      clock.advance(100);
      // Everyone but w7 beats once a second, at staggered moments.
      for (let i = 0; i < 50; i++) if (i !== 7 && (t / 100) % 10 === i % 10) r.heartbeat(`w${i}`, `s${i}`, t, EMPTY_METRICS);
      r.tick();
      for (const e of events.splice(0)) {
        assert.equal(e.worker, "w7", `only the silent worker changes (${e.worker} → ${e.to} at ${t})`);
        seen.push({ at: t, to: e.to });
      }
    }
    // Late is past 2 intervals (2000 ms), unhealthy past 3 (3000 ms); both before the 5 s full check.
    assert.deepEqual(seen, [
      { at: 2100, to: "degraded" },
      { at: 3100, to: "unhealthy" },
    ]);
  });
});

describe("sameReasons", () => {
  const r = (code: string, message = code) => ({ code, message }) as never;
  it("compares the codes, in any order, and not the messages (they carry changing numbers)", () => {
    assert.equal(sameReasons([], []), true);
    assert.equal(sameReasons([r("heartbeat_late", "none for 2.1 s")], [r("heartbeat_late", "none for 2.4 s")]), true);
    assert.equal(sameReasons([r("battery_low"), r("disk_pressure")], [r("disk_pressure"), r("battery_low")]), true);
  });
  it("differs when a code differs or the count does", () => {
    assert.equal(sameReasons([r("battery_low")], [r("disk_pressure")]), false);
    assert.equal(sameReasons([r("battery_low")], []), false);
    assert.equal(sameReasons([], [r("battery_low")]), false);
    assert.equal(sameReasons([r("battery_low"), r("battery_low")], [r("battery_low"), r("disk_pressure")]), false);
  });
});

describe("history per worker", () => {
  /** Honest workers with a little history each, then one identity reconnecting `n` times in a loop. */
  function floodedFleet(n: number) {
    const h = new Harness();
    const r = new Registry({ clock: h.clock, policy, onEvent: (e) => h.events.push(e) });
    for (let i = 0; i < 20; i++) r.sessionOpened(session(`honest${i}`, `h${i}`));
    r.heartbeat("honest3", "h3", 1, { ...EMPTY_METRICS, errors: [{ collector: "fsSize", code: "TIMEOUT" }] });
    r.heartbeat("honest3", "h3", 2, EMPTY_METRICS);
    r.goodbye("honest7", "h7", "SIGTERM");
    const before = new Map(Array.from({ length: 20 }, (_, i) => [`honest${i}`, r.events({ worker: `honest${i}` })]));
    for (let i = 0; i < n; i++) {
      h.clock.advance(15);
      r.sessionOpened(session("flood", `f${i}`));
      r.sessionClosed("flood", `f${i}`, "reset");
    }
    return { r, h, before };
  }

  it("700 reconnects by one identity: every other worker's own history is intact", () => {
    const { r, h, before } = floodedFleet(700);
    assert.ok(h.events.filter((e) => e.worker === "flood").length >= 1400, "the flood made more events than the fleet-wide history holds");
    for (const [id, events] of before) {
      assert.ok(events.length >= 1, `${id} had history`);
      assert.deepEqual(r.events({ worker: id }), events, `${id}'s history is intact`);
    }
    assert.equal(r.events({ worker: "honest0" })[0]!.from, null, "an honest worker's join event is still there");
    const flood = r.events({ worker: "flood" });
    assert.equal(flood.length, 50, "the flooding identity keeps its own newest 50");
    assert.equal(flood.at(-1)!.seq, h.events.at(-1)!.seq);
  });

  it("the fleet-wide view pages back by seq through the merged histories, newest last, each event once", () => {
    const { r, before } = floodedFleet(700);
    const first = r.eventPage({ limit: 50 });
    assert.equal(first.events.length, 50);
    assert.ok(first.hasMore);
    assert.ok(first.events.every((e) => e.worker === "flood"), "the newest are the flood's");
    const seen: number[] = [];
    let page = first;
    for (let guard = 0; guard < 100; guard++) {
      seen.unshift(...page.events.map((e) => e.seq));
      if (!page.hasMore) break;
      page = r.eventPage({ limit: 50, beforeSeq: page.events[0]!.seq });
    }
    assert.equal(page.hasMore, false, "the walk ends");
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]! < seen[i]!, "strictly by seq, no event twice");
    for (const events of before.values()) for (const e of events) assert.ok(seen.includes(e.seq), `event ${e.seq} of ${e.worker} reachable`);
    assert.deepEqual(r.events({ limit: 3 }).map((e) => e.seq), first.events.slice(-3).map((e) => e.seq));
    assert.equal(r.events({ afterSeq: first.events.at(-2)!.seq }).length, 1);
  });

  it("since and beforeSeq filter one worker's history too, and a page says whether older events match", () => {
    const h = new Harness();
    h.connect("w1");
    const t0 = h.clock.wall();
    for (let i = 0; i < 5; i++) {
      h.run(60_000);
      h.registry.sessionClosed("w1", `w1-s${i + 1}`, "x");
      h.connect("w1", `w1-s${i + 2}`);
    }
    const all = h.registry.events({ worker: "w1" });
    assert.equal(all.length, 11);
    const recent = h.registry.eventPage({ worker: "w1", since: t0 + 4 * 60_000 });
    assert.ok(recent.events.every((e) => e.at >= t0 + 4 * 60_000));
    assert.equal(recent.events.length, 4);
    assert.equal(recent.hasMore, false, "older ones exist, but not since then");
    const older = h.registry.eventPage({ worker: "w1", beforeSeq: all[5]!.seq, limit: 3 });
    assert.deepEqual(older.events.map((e) => e.seq), all.slice(2, 5).map((e) => e.seq));
    assert.equal(older.hasMore, true);
  });

  it("a fleet-wide budget bounds what all workers keep together, and a quiet worker still keeps its own", () => {
    const clock = new FakeClock();
    const r = new Registry({ clock, policy, historyLimit: 100, workerHistoryLimit: 50, historyBudget: 200 });
    r.sessionOpened(session("quiet", "q"));
    for (let w = 0; w < 20; w++) {
      for (let i = 0; i < 30; i++) {
        r.sessionOpened(session(`busy${w}`, `b${w}-${i}`));
        r.sessionClosed(`busy${w}`, `b${w}-${i}`, "reset");
      }
    }
    const kept = [...Array(20).keys()].map((w) => r.events({ worker: `busy${w}` }).length);
    const total = kept.reduce((a, b) => a + b, 0) + r.events({ worker: "quiet" }).length;
    // Past the budget a worker holding 10 grows no more: at most budget + 10 per worker that had fewer.
    assert.ok(total <= 200 + 20 * 10, `${total} events kept in all`);
    assert.ok(kept.every((n) => n >= 10), `each keeps at least 10 of its own: ${kept}`);
    assert.equal(r.events({ worker: "quiet" }).length, 1, "the quiet worker's join is kept");
    const restored = new Registry({ clock, policy, historyLimit: 100 });
    restored.restore(r.export(), 1000);
    assert.deepEqual(restored.events({ worker: "busy3" }), r.events({ worker: "busy3" }), "persisted per worker");
    assert.deepEqual(restored.events({ worker: "quiet" }), r.events({ worker: "quiet" }));
  });
});

describe("FleetHistory against a brute-force reference", () => {
  it("every page back through the fleet's ring and the owners' rings is the union, by seq, once", () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const h = new FleetHistory<{ seq: number; at: number; owner: number }>({ recent: 40, perOwner: 12, total: 150, floor: 4 });
    const rings: Array<Array<{ seq: number; at: number; owner: number }> | null> = Array.from({ length: 30 }, () => null);
    const pushed: Array<{ seq: number; at: number; owner: number }> = [];
    for (let seq = 1; seq <= 2000; seq++) {
      // A few owners are noisy, most are quiet.
      const owner = rand(10) < 7 ? rand(3) : rand(30);
      const item = { seq, at: seq * 10, owner };
      rings[owner] = h.push(rings[owner]!, item);
      pushed.push(item);
    }
    const recentSeqs = pushed.slice(-40).map((i) => i.seq);
    const held = new Set([...rings.flatMap((r) => (r ?? []).map((i) => i.seq)), ...recentSeqs]);
    const expected = [...held].sort((a, b) => a - b);
    assert.equal(h.total, rings.reduce((n, r) => n + (r?.length ?? 0), 0), "the total counts what the rings hold");
    assert.ok(rings.every((r) => (r?.length ?? 0) <= 12));
    for (const limit of [1, 7, 50]) {
      const got: number[] = [];
      let before: number | undefined;
      for (;;) {
        const page = h.fleetPage(() => rings, { limit, beforeSeq: before });
        got.unshift(...page.items.map((i) => i.seq));
        if (!page.hasMore) break;
        before = page.items[0]!.seq;
      }
      assert.deepEqual(got, expected, `pages of ${limit}`);
    }
    assert.deepEqual(h.everything(rings).map((i) => i.seq), expected, "what the state file keeps");
    const since = h.fleetPage(() => rings, { limit: 1000, since: 19_000 });
    assert.deepEqual(since.items.map((i) => i.seq), expected.filter((s) => s * 10 >= 19_000));
  });
});

describe("forgetting workers, and revoked ones", () => {
  it("forget refuses an unknown or connected worker, and removes one that is not connected, as an event", () => {
    const h = new Harness();
    h.connect("w1");
    h.connect("w2");
    assert.deepEqual(h.registry.forget("nobody"), { refused: "unknown" });
    assert.deepEqual(h.registry.forget("w1"), { refused: "connected", sessionId: "w1-s1" });
    assert.equal(h.state("w1"), "healthy");
    h.registry.goodbye("w1", "w1-s1", "retired");
    const outcome = h.registry.forget("w1");
    assert.ok("forgotten" in outcome);
    const e = outcome.forgotten;
    assert.deepEqual([e.worker, e.from, e.to, e.reasons[0]!.code], ["w1", "offline", "offline", "forgotten"]);
    assert.equal(h.events.at(-1), e, "told to listeners like any event");
    assert.equal(h.registry.get("w1"), undefined);
    assert.deepEqual(h.registry.forget("w1"), { refused: "unknown" }, "a second call changes nothing");
    // Its own history went with it; the fleet-wide history still tells what happened, until it ages out.
    assert.deepEqual(h.registry.events({ worker: "w1" }).map((x) => x.to), ["healthy", "offline", "offline"]);
    assert.equal(h.registry.events({ worker: "w1" }).at(-1), e);
    assert.equal(h.registry.events().at(-1)!.seq, e.seq);
    const snapshot = h.registry.export();
    assert.deepEqual(snapshot.workers.map((w) => w.id), ["w2"]);
    const after = new Harness();
    after.registry.restore(snapshot, 1000);
    assert.equal(after.registry.get("w1"), undefined, "forgotten across a restart");
    h.connect("w1", "w1-s9");
    assert.equal(h.events.at(-1)!.from, null, "a host that comes back is new");
  });

  it("forgets a worker offline after a goodbye for longer than the configured time, and only such a worker", () => {
    const clock = new FakeClock();
    const events: HealthEvent[] = [];
    const r = new Registry({ clock, policy, forgetOfflineAfterMs: 7 * 86_400_000, onEvent: (e) => events.push(e) });
    for (const id of ["bye", "lost", "up"]) r.sessionOpened(session(id, `${id}-s`));
    r.goodbye("bye", "bye-s", "SIGTERM");
    r.sessionClosed("lost", "lost-s", "reset");
    const step = (ms: number) => {
      clock.advance(ms);
      r.tick();
      r.heartbeat("up", "up-s", 1, EMPTY_METRICS);
    };
    step(6.9 * 86_400_000);
    step(40_000);
    assert.equal(r.get("bye")?.state, "offline", "6.9 days: kept");
    step(0.1 * 86_400_000);
    step(40_000);
    assert.equal(r.get("bye"), undefined, "past 7 days offline: forgotten");
    const e = events.find((x) => x.worker === "bye" && x.reasons[0]?.code === "expired_offline")!;
    assert.match(e.reasons[0]!.message, /^forgotten: offline for 7(\.\d)?d, more than 7d$/);
    assert.equal(r.get("lost")?.state, "unhealthy", "a worker lost without a goodbye is an alarm, not forgotten");
    assert.equal(r.get("up")?.state, "healthy");
  });

  it("forgets after a restart a worker whose goodbye is older than the time, at the first full check", () => {
    const before = new Harness();
    before.connect("old");
    before.registry.goodbye("old", "old-s1", "SIGTERM");
    const clock = new FakeClock(before.clock.wall() + 8 * 86_400_000);
    const r = new Registry({ clock, policy });
    r.restore(before.registry.export(), 5000);
    assert.equal(r.get("old")?.state, "offline");
    clock.advance(100);
    r.tick();
    assert.equal(r.get("old"), undefined, "the default is 7 days");
  });

  it("0 never forgets", () => {
    const clock = new FakeClock();
    const r = new Registry({ clock, policy, forgetOfflineAfterMs: 0 });
    r.sessionOpened(session("bye", "s"));
    r.goodbye("bye", "s", "");
    clock.advance(365 * 86_400_000);
    r.tick();
    assert.equal(r.get("bye")?.state, "offline");
  });

  it("a revoked certificate takes its worker out of the live set, once, and across a restart", () => {
    const h = new Harness();
    h.connect("w1", "s1", { certSerial: "0a" });
    h.connect("w2", "s2", { certSerial: "0b" });
    h.connect("w3", "s3", { certSerial: "0c" });
    h.registry.sessionClosed("w3", "s3", "reset");
    const revoked = new Set(["0a", "0c"]);
    assert.deepEqual(h.registry.revokeMatching((s) => revoked.has(s)), ["w1"], "the live session to close");
    for (const id of ["w1", "w3"]) {
      const v = h.registry.get(id)!;
      assert.deepEqual([v.state, v.connected, v.reasons[0]!.code], ["offline", false, "revoked"], id);
    }
    assert.equal(h.registry.sessionClosed("w1", "s1", "closed by manager: revoked"), false, "its close changes nothing more");
    assert.equal(h.registry.heartbeat("w1", "s1", 9, EMPTY_METRICS), false);
    const n = h.events.length;
    assert.deepEqual(h.registry.revokeMatching((s) => revoked.has(s)), []);
    assert.equal(h.events.length, n, "a CRL reloaded again records nothing new");
    assert.equal(h.state("w2"), "healthy");

    const after = new Harness();
    const snapshot = h.registry.export();
    // Revoked while the manager was away: a restored worker is matched by the serial it last connected with.
    after.registry.restore(snapshot, 5000);
    revoked.add("0b");
    after.registry.revokeMatching((s) => revoked.has(s));
    assert.equal(after.registry.get("w2")!.reasons[0]!.code, "revoked");
    after.connect("w1", "s9", { certSerial: "1f" });
    assert.equal(after.state("w1"), "healthy", "a new certificate brings it back");
  });
});
