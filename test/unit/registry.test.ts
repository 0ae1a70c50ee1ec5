import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY, sameReasons, type HealthPolicy, type HealthState } from "../../src/core/health.js";
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
    h.beat("w1", { ...EMPTY_METRICS, errors: ["fsSize: no answer within 5s"] });
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
    h.beat("w1", { ...EMPTY_METRICS, errors: ["x: y"] });
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
    h.beat("w1", { ...EMPTY_METRICS, errors: ["fsSize: no answer"] });
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
      errors: ["cpuTemperature: timeout"],
    });
    const v = h.registry.get("w1")!;
    assert.equal(v.state, "degraded");
    assert.deepEqual(v.reasons.map((r) => r.code), ["memory_pressure", "disk_pressure", "battery_low", "collector_errors"]);
    assert.match(v.reasons[1]!.message, /\/var 99% used/);
    const degradedEvents = h.events.filter((e) => e.to === "degraded");
    assert.equal(degradedEvents.length, 2, "the reason set changed once: one more event");
    // Same reasons, other figures: no new event.
    h.beat("w1", { ...EMPTY_METRICS, mem: 98, disk: { mount: "/var", used: 99 }, battery: { percent: 3, charging: false }, errors: ["cpuTemperature: timeout"] });
    assert.equal(h.events.filter((e) => e.to === "degraded").length, 2);
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
