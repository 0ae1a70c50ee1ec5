import type { Clock } from "./clock.js";
import { FleetHistory } from "./history.js";
import {
  assessConnected,
  lateBoundMs,
  missedBoundMs,
  sameMessages,
  sameReasons,
  type HealthPolicy,
  type HealthState,
  type Reason,
} from "./health.js";
import { formatDuration } from "../config/duration.js";
import type { Labels } from "../protocol/messages.js";
import { absorbMetrics, copyMetrics, type MetricsSummary } from "../protocol/metrics.js";

/**
 * One health transition. Also recorded when the state stays but its set of reasons changes, when a restored worker
 * returns after a manager restart (reason `returned_after_restart`, beside its current reasons), and when a worker
 * is removed from the registry (reason `forgotten` or `expired_offline`; `to` is then `offline`: it is neither
 * connected nor expected back, and the event is the last one about it).
 */
export interface HealthEvent {
  seq: number;
  /** Wall-clock time, epoch milliseconds. */
  at: number;
  worker: string;
  from: HealthState | null;
  to: HealthState;
  reasons: Reason[];
}

export interface SessionInfo {
  id: string;
  sessionId: string;
  hostname: string;
  agentVersion: string;
  labels: Labels;
  platform: { os: string; arch: string; release: string };
  address: string | null;
  /** Client certificate expiry, epoch milliseconds. */
  certNotAfter: number | null;
  /** When the client certificate became valid, epoch milliseconds: with certNotAfter, its life. */
  certNotBefore?: number | null;
  /** The client certificate's serial number as the CRL lists it: a revocation takes the worker out of the live set. */
  certSerial?: string | null;
}

/** What is kept of a worker across manager restarts. */
export interface KnownWorker {
  id: string;
  hostname: string;
  agentVersion: string;
  labels: Labels;
  platform: { os: string; arch: string; release: string };
  address: string | null;
  firstSeen: number;
  lastSeen: number;
  state: HealthState;
  reasons: Reason[];
  certSerial?: string | null;
}

export interface RegistrySnapshot {
  workers: KnownWorker[];
  events: HealthEvent[];
}

export interface WorkerView {
  id: string;
  hostname: string;
  state: HealthState;
  reasons: Reason[];
  connected: boolean;
  lastHeartbeatAgeMs: number | null;
  connectedSince: number | null;
  firstSeen: number;
  lastSeen: number;
  agentVersion: string;
  labels: Labels;
  platform: { os: string; arch: string; release: string };
  address: string | null;
  heartbeats: number;
  metrics: MetricsSummary | null;
}

interface WorkerRecord {
  info: SessionInfo;
  /** The open session, or null once it ended. */
  sessionId: string | null;
  state: HealthState;
  reasons: Reason[];
  firstSeen: number;
  lastSeen: number;
  connectedSinceWall: number | null;
  /** Monotonic time of the last hello or heartbeat. */
  lastBeat: number;
  /** After a manager stall, silence is counted from here rather than from the last beat. */
  graceFrom: number;
  heartbeats: number;
  lastSeq: number | null;
  metrics: MetricsSummary | null;
  sessionStarts: number[];
  /** Restored from a previous run and not connected since: judged when the restart grace period ends. */
  restored: boolean;
  /** When a session of this id was replaced by a newer one while still open, and from where the sessions came. */
  replacements: number[];
  replacingAddresses: string[];
  /** What silence meant at the last assessment: see `silenceClass`. */
  silence: SilenceClass;
  /** The deadline bucket this record was last filed in; entries in other buckets are stale. */
  dueBucket: number;
  /** This worker's own events, oldest first; created with its first event (see FleetHistory). */
  events: HealthEvent[] | null;
}

/** 0: heard from recently; 1: a heartbeat late; 2: past the unhealthy bound. */
type SilenceClass = 0 | 1 | 2;

/**
 * Silence is the only reason that changes by itself between heartbeats, at two known moments: a heartbeat late,
 * and past the unhealthy bound. Each connected worker is filed under the next of those moments, in buckets of
 * this width; a tick looks only at the buckets that came due. Walking all 10,000 workers every 100 ms instead
 * cost a tenth of a core on this project's 2-core machine: a record is a cache miss, not a few nanoseconds.
 */
const BUCKET_MS = 100;

/** The last sign of life, or the end of a manager stall if that is later: silence is counted from here. */
function silentSince(rec: WorkerRecord): number {
  return Math.max(rec.lastBeat, rec.graceFrom);
}

function silenceMs(rec: WorkerRecord, now: number): number {
  return now - silentSince(rec);
}

/** How many of `times` are later than `since` (a loop: this runs on every heartbeat, and a filter allocates). */
function countSince(times: readonly number[], since: number): number {
  let n = 0;
  for (const t of times) if (t > since) n++;
  return n;
}

/**
 * Everything else that ages (flapping and duplicate windows, certificate expiry) moves in minutes or days, and each
 * heartbeat re-assesses its worker anyway: the full re-assessment of every connected worker is a safety net for
 * those that stay silent, so it runs rarely. Every 5 s it was as much work as all the heartbeats at 10,000 workers.
 */
const FULL_CHECK_MS = 30_000;

/** While restored workers keep coming back, the restart grace stretches up to this many times its length. */
const GRACE_STRETCH = 4;

/** What each worker keeps of its own events, and what all of them together may keep (see docs/architecture.md). */
export const WORKER_HISTORY_LIMIT = 50;
export const FLEET_HISTORY_BUDGET = 100_000;
const WORKER_HISTORY_FLOOR = 10;
export const DEFAULT_FORGET_OFFLINE_AFTER_MS = 7 * 86_400_000;

const RETURNED: Reason = { code: "returned_after_restart", message: "back after the manager restart" };
const REVOKED: Reason = { code: "revoked", message: "certificate revoked" };
const FORGOTTEN: Reason = { code: "forgotten", message: "forgotten: removed from the registry on request" };

export type ForgetResult =
  | { forgotten: HealthEvent }
  | { refused: "unknown" }
  | { refused: "connected"; sessionId: string };

export interface EventQuery {
  worker?: string;
  /** Only events newer than this sequence number. */
  afterSeq?: number;
  /** Only events older than this sequence number: pass the first event's seq of a page to get the page before it. */
  beforeSeq?: number;
  /** Only events at or after this wall time (epoch milliseconds). */
  since?: number;
  /** The newest this many; by default the fleet-wide recent history's length. */
  limit?: number;
}

export interface RegistryOptions {
  clock: Clock;
  policy: HealthPolicy;
  /** The fleet-wide history of the newest events, whoever they are about. */
  historyLimit?: number;
  /** Each worker's own history. */
  workerHistoryLimit?: number;
  /** Events in all workers' histories together (a worker keeps at least 10 of its own however many others have). */
  historyBudget?: number;
  /** A worker offline (goodbye or revoked) for longer than this is forgotten; 0: never. */
  forgetOfflineAfterMs?: number;
  onEvent?: (event: HealthEvent) => void;
  onStall?: (stalledMs: number) => void;
}

/**
 * The live registry and its health state machine. Pure: no sockets, no timers. The shell calls `tick()` often
 * (every ~100 ms) and reports session facts; all ages come from the injected monotonic clock at the moment a
 * call arrives, never from worker timestamps.
 */
export class Registry {
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly history: FleetHistory<HealthEvent>;
  private readonly clock: Clock;
  private policy: HealthPolicy;
  private eventSeq = 0;
  private heartbeatCount = 0;
  private lastTick: number;
  private lastFullCheck = -Infinity;
  /** Restored workers that may still be waiting for their grace period to end (an upper bound). */
  private restoredPending = 0;
  /** The earliest end of a pending grace period: until then no restored worker needs a look. */
  private restoredDueAt = Infinity;
  /** The restart grace `restore` was given, and when a restored worker last came back. */
  private restoreGraceMs = 0;
  private lastReturnAt = -Infinity;
  /** Deadline bucket → workers filed there (see BUCKET_MS). */
  private readonly due = new Map<number, WorkerRecord[]>();

  constructor(private readonly options: RegistryOptions) {
    this.clock = options.clock;
    this.policy = options.policy;
    this.history = new FleetHistory({
      recent: options.historyLimit ?? 1000,
      perOwner: options.workerHistoryLimit ?? WORKER_HISTORY_LIMIT,
      total: options.historyBudget ?? FLEET_HISTORY_BUDGET,
      floor: WORKER_HISTORY_FLOOR,
    });
    this.lastTick = this.clock.monotonic();
  }

  get healthPolicy(): HealthPolicy {
    return this.policy;
  }

  /**
   * A worker's session passed hello. Returns the session it replaces, if one was still open: the caller closes
   * that one, and its close is then ignored here because it is no longer current.
   */
  sessionOpened(info: SessionInfo): { replaced: string | null } {
    const now = this.clock.monotonic();
    const wall = this.clock.wall();
    let rec = this.workers.get(info.id);
    const isNew = rec === undefined;
    // A restored state was a belief carried over a restart; the first session turns it into an observation,
    // which is recorded even when the state is the same.
    const confirmsRestored = rec?.restored === true ? rec.state : null;
    if (confirmsRestored !== null) this.lastReturnAt = now;
    const replaced = rec?.sessionId ?? null;
    if (!rec) {
      rec = {
        info,
        sessionId: info.sessionId,
        state: "healthy",
        reasons: [],
        firstSeen: wall,
        lastSeen: wall,
        connectedSinceWall: wall,
        lastBeat: now,
        graceFrom: now,
        heartbeats: 0,
        lastSeq: null,
        metrics: null,
        sessionStarts: [],
        restored: false,
        replacements: [],
        replacingAddresses: [],
        silence: 0,
        dueBucket: -1,
        events: null,
      };
      this.workers.set(info.id, rec);
    }
    const previousAddress = rec.info.address;
    rec.info = info;
    rec.restored = false;
    rec.sessionId = info.sessionId;
    rec.lastSeen = wall;
    rec.connectedSinceWall = wall;
    rec.lastBeat = now;
    rec.graceFrom = now;
    rec.lastSeq = null;
    rec.sessionStarts = rec.sessionStarts.filter((t) => now - t < this.policy.flapWindowMs);
    rec.sessionStarts.push(now);
    if (replaced !== null) {
      rec.replacements = rec.replacements.filter((t) => now - t < this.policy.duplicateWindowMs);
      rec.replacements.push(now);
      rec.replacingAddresses = [...new Set([previousAddress, info.address, ...rec.replacingAddresses])]
        .filter((a): a is string => a !== null)
        .slice(0, 4);
    }
    if (isNew || confirmsRestored !== null) {
      Object.assign(rec, this.assess(rec));
      // A returning worker is told apart from one that recovers: the event says it is back after the restart.
      this.recordEvent(rec, confirmsRestored, confirmsRestored === null ? rec.reasons : [RETURNED, ...rec.reasons]);
    } else {
      this.reassess(rec);
    }
    return { replaced };
  }

  /**
   * The worker of this session now holds a renewed certificate (handed over its live session): expiry warnings and
   * revocation look at the new one. Returns false if the session is not the worker's current one.
   */
  certificateRenewed(id: string, sessionId: string, cert: { serial: string; notBefore: number; notAfter: number }): boolean {
    const rec = this.current(id, sessionId);
    if (!rec) return false;
    rec.info = { ...rec.info, certSerial: cert.serial, certNotBefore: cert.notBefore, certNotAfter: cert.notAfter };
    this.reassess(rec);
    return true;
  }

  /** Returns false if the session is not the worker's current one (a stale or replaced session). */
  heartbeat(id: string, sessionId: string, seq: number, metrics: MetricsSummary): boolean {
    const rec = this.current(id, sessionId);
    if (!rec) return false;
    rec.lastBeat = this.clock.monotonic();
    rec.lastSeen = this.clock.wall();
    rec.heartbeats++;
    this.heartbeatCount++;
    rec.lastSeq = seq;
    rec.metrics = absorbMetrics(rec.metrics, metrics);
    this.reassess(rec);
    return true;
  }

  /** The worker said goodbye: it is stopping on purpose. */
  goodbye(id: string, sessionId: string, reason: string): boolean {
    const rec = this.current(id, sessionId);
    if (rec) rec.lastSeen = this.clock.wall();
    return this.end(rec, "offline", { code: "goodbye", message: reason ? `goodbye: ${reason}` : "goodbye" });
  }

  /** The socket closed. Without a goodbye first, the worker is lost: unhealthy at once. */
  sessionClosed(id: string, sessionId: string, detail: string): boolean {
    return this.end(this.current(id, sessionId), "unhealthy", { code: "connection_lost", message: `connection lost: ${detail}` });
  }

  /**
   * Re-evaluate deadlines. If far more time passed since the last tick than the shell's timer allows, the
   * manager itself was paused (SIGSTOP, sleep, a long GC): silence during the pause is not the workers' fault,
   * so every connected worker's silence is counted from now.
   */
  tick(): { stalledMs: number | null } {
    const now = this.clock.monotonic();
    const gap = now - this.lastTick;
    this.lastTick = now;
    let stalledMs: number | null = null;
    if (gap > Math.max(this.policy.heartbeatIntervalMs, 1000)) {
      stalledMs = gap;
      for (const rec of this.workers.values()) if (rec.sessionId) rec.graceFrom = now;
      this.options.onStall?.(gap);
    }
    // Restored workers wait for their grace period to end; only after a restart, and only until then.
    // A walk over 10,000 records every tick cost several percent of a reconnect storm: walk only when one is due.
    if (this.restoredPending > 0 && now >= this.restoredDueAt) {
      let pending = 0;
      let dueAt = Infinity;
      for (const rec of this.workers.values()) {
        if (!rec.restored || rec.sessionId) continue;
        const deadline = this.restoredDeadline(rec);
        if (now >= deadline) this.expireRestored(rec);
        else {
          pending++;
          dueAt = Math.min(dueAt, deadline);
        }
      }
      this.restoredPending = pending;
      this.restoredDueAt = dueAt;
    }
    if (stalledMs !== null || now - this.lastFullCheck >= FULL_CHECK_MS) {
      this.lastFullCheck = now;
      for (const rec of this.workers.values()) if (rec.sessionId) this.reassess(rec);
      this.forgetLongOffline();
      return { stalledMs };
    }
    const upTo = Math.floor(now / BUCKET_MS);
    for (const [bucket, list] of this.due) {
      if (bucket > upTo) continue;
      this.due.delete(bucket);
      for (const rec of list) {
        if (rec.dueBucket !== bucket || !rec.sessionId) continue;
        if (this.silenceClass(rec, now) !== rec.silence) this.reassess(rec);
        else this.fileDue(rec, now);
      }
    }
    return { stalledMs };
  }

  /**
   * Loads what a previous run knew. Restored workers are not connected; each keeps its recorded state until it
   * reconnects or `graceMs` passes (longer while others are still coming back: see restoredDeadline), when it
   * becomes unhealthy ("not seen since manager start"), unless its last word was a goodbye, in which case it stays
   * offline. No alarm is raised for the restart itself.
   */
  restore(snapshot: RegistrySnapshot, graceMs: number): void {
    const now = this.clock.monotonic();
    for (const k of snapshot.workers) {
      if (this.workers.has(k.id)) continue;
      this.workers.set(k.id, {
        info: {
          id: k.id,
          sessionId: "",
          hostname: k.hostname,
          agentVersion: k.agentVersion,
          labels: k.labels,
          platform: k.platform,
          address: k.address,
          certNotAfter: null,
          certSerial: k.certSerial ?? null,
        },
        sessionId: null,
        state: k.state,
        reasons: k.reasons,
        firstSeen: k.firstSeen,
        lastSeen: k.lastSeen,
        connectedSinceWall: null,
        lastBeat: now,
        graceFrom: now + graceMs,
        heartbeats: 0,
        lastSeq: null,
        metrics: null,
        sessionStarts: [],
        restored: true,
        replacements: [],
        replacingAddresses: [],
        silence: 0,
        dueBucket: -1,
        events: null,
      });
    }
    this.restoredPending = this.workers.size;
    this.restoredDueAt = Math.min(this.restoredDueAt, now + graceMs);
    this.restoreGraceMs = graceMs;
    // In sequence order, so each worker's ring and the fleet's keep the newest. A loop, not Math.max(...events):
    // a spread of 100,000 arguments overflows the stack.
    for (const e of [...snapshot.events].sort((a, b) => a.seq - b.seq)) {
      const rec = this.workers.get(e.worker);
      if (rec) rec.events = this.history.push(rec.events, e);
      else this.history.pushOrphan(e);
      if (e.seq > this.eventSeq) this.eventSeq = e.seq;
    }
  }

  export(): RegistrySnapshot {
    return {
      workers: [...this.workers.values()].map((r) => ({
        id: r.info.id,
        hostname: r.info.hostname,
        agentVersion: r.info.agentVersion,
        labels: r.info.labels,
        platform: r.info.platform,
        address: r.info.address,
        firstSeen: r.firstSeen,
        lastSeen: r.lastSeen,
        state: r.state,
        reasons: r.reasons,
        certSerial: r.info.certSerial ?? null,
      })),
      events: this.history.everything(this.rings()),
    };
  }

  /** Change the heartbeat interval or thresholds; the deadlines follow at the next tick. */
  setPolicy(policy: HealthPolicy): void {
    this.policy = policy;
    this.lastFullCheck = -Infinity;
  }

  get(id: string): WorkerView | undefined {
    const rec = this.workers.get(id);
    return rec ? this.view(rec) : undefined;
  }

  list(): WorkerView[] {
    return [...this.workers.values()].map((r) => this.view(r));
  }

  /**
   * Each worker's id, state and labels only: what a job's plan looks at. A full view copies a worker's metrics,
   * which at 10,000 workers is megabytes for every plan.
   */
  briefs(): Array<Pick<WorkerView, "id" | "state" | "labels">> {
    const out: Array<Pick<WorkerView, "id" | "state" | "labels">> = [];
    for (const rec of this.workers.values()) out.push({ id: rec.info.id, state: rec.state, labels: rec.info.labels });
    return out;
  }

  get size(): number {
    return this.workers.size;
  }

  /** Heartbeats accepted since the registry was made: a sum over the records would fall when one is forgotten. */
  get heartbeatsReceived(): number {
    return this.heartbeatCount;
  }

  /**
   * Each worker as it is kept, without a copy: what a metrics scrape reads at 10,000 workers. The callback must not
   * keep or change what it is given (the metrics are the record's own, updated in place by the next heartbeat).
   */
  forEachWorker(fn: (id: string, state: HealthState, connected: boolean, labels: Labels, metrics: Readonly<MetricsSummary> | null) => void): void {
    for (const rec of this.workers.values()) fn(rec.info.id, rec.state, rec.sessionId !== null, rec.info.labels, rec.metrics);
  }

  /** Workers connected now, plus those restored after a restart that are still expected back within the grace. */
  expectedSessions(): number {
    let n = 0;
    for (const rec of this.workers.values()) if (rec.sessionId !== null || rec.restored) n++;
    return n;
  }

  isConnected(id: string, sessionId: string): boolean {
    return this.workers.get(id)?.sessionId === sessionId;
  }

  /** Connected sessions silent for longer than `ms`: the shell closes these to free half-open sockets. */
  silentSessions(ms: number): Array<{ id: string; sessionId: string }> {
    const now = this.clock.monotonic();
    const out: Array<{ id: string; sessionId: string }> = [];
    for (const rec of this.workers.values()) {
      if (rec.sessionId && silenceMs(rec, now) > ms) {
        out.push({ id: rec.info.id, sessionId: rec.sessionId });
      }
    }
    return out;
  }

  /** Events newest last; see `eventPage`. */
  events(query: EventQuery = {}): HealthEvent[] {
    return this.eventPage(query).events;
  }

  /**
   * One page of events, newest last, and whether older ones match too (ask for them with `beforeSeq` set to the
   * first event's seq). With a worker: its own history, or for a worker no longer known, what the fleet-wide
   * history still holds about it. Without: every worker's history merged by sequence number.
   */
  eventPage(query: EventQuery = {}): { events: HealthEvent[]; hasMore: boolean } {
    const q = {
      afterSeq: query.afterSeq,
      beforeSeq: query.beforeSeq,
      since: query.since,
      limit: query.limit ?? this.options.historyLimit ?? 1000,
    };
    let page;
    if (query.worker !== undefined) {
      const worker = query.worker;
      page = this.history.ownerPage(this.workers.get(worker)?.events ?? null, q, (e) => e.worker === worker);
    } else {
      page = this.history.fleetPage(() => this.rings(), q);
    }
    return { events: page.items, hasMore: page.hasMore };
  }

  /**
   * Removes a worker that is not connected, with its own history; the removal is an event (in the fleet-wide
   * history). A connected worker is refused: it is live, and its agent would reconnect within a second anyway;
   * stopping the agent or revoking its certificate is what retires a host.
   */
  forget(id: string): ForgetResult {
    const rec = this.workers.get(id);
    if (!rec) return { refused: "unknown" };
    if (rec.sessionId !== null) return { refused: "connected", sessionId: rec.sessionId };
    return { forgotten: this.remove(rec, FORGOTTEN) };
  }

  /**
   * Takes workers whose certificate is revoked out of the live set: `offline` with reason `revoked`, session ended.
   * Returns the ids whose live session the caller closes. A worker with a new certificate returns as any other.
   */
  revokeMatching(isRevoked: (serial: string) => boolean): string[] {
    const hit: string[] = [];
    for (const rec of this.workers.values()) {
      const serial = rec.info.certSerial;
      if (!serial || !isRevoked(serial)) continue;
      if (rec.sessionId === null && rec.state === "offline" && rec.reasons[0]?.code === "revoked") continue;
      if (rec.sessionId !== null) hit.push(rec.info.id);
      rec.restored = false;
      rec.sessionId = null;
      rec.connectedSinceWall = null;
      this.transition(rec, "offline", [REVOKED]);
    }
    return hit;
  }

  /**
   * When a restored worker that has not come back is judged: at the end of its grace period, or later while the
   * fleet is still coming back (another restored worker returned within the last third of the grace), but no
   * later than GRACE_STRETCH times the grace. A large fleet's reconnect storm can outlast a fixed grace: 10,000
   * full TLS handshakes took 33–38 s on the bench machine, and a thousand workers still queued for theirs were
   * marked unhealthy at 30 s.
   */
  private restoredDeadline(rec: WorkerRecord): number {
    const whileReturning = Math.max(rec.graceFrom, this.lastReturnAt + this.restoreGraceMs / 3);
    return Math.min(whileReturning, rec.graceFrom + (GRACE_STRETCH - 1) * this.restoreGraceMs);
  }

  private expireRestored(rec: WorkerRecord): void {
    rec.restored = false;
    if (rec.state === "offline") return;
    this.transition(rec, "unhealthy", [{ code: "not_seen_since_start", message: "not seen since manager start" }]);
  }

  private end(rec: WorkerRecord | undefined, state: "offline" | "unhealthy", reason: Reason): boolean {
    if (!rec) return false;
    rec.sessionId = null;
    rec.connectedSinceWall = null;
    this.transition(rec, state, [reason]);
    return true;
  }

  private current(id: string, sessionId: string): WorkerRecord | undefined {
    const rec = this.workers.get(id);
    return rec && rec.sessionId === sessionId ? rec : undefined;
  }

  private reassess(rec: WorkerRecord): void {
    const { state, reasons } = this.assess(rec);
    this.transition(rec, state, reasons);
  }

  /** Files a connected worker under the next moment its silence would change what it means. */
  private fileDue(rec: WorkerRecord, now: number): void {
    if (rec.silence === 2) {
      rec.dueBucket = -1;
      return;
    }
    const at = silentSince(rec) + (rec.silence === 0 ? lateBoundMs(this.policy) : missedBoundMs(this.policy));
    // Strictly after the threshold, and never in a bucket already being worked through.
    const nowBucket = Math.floor(now / BUCKET_MS);
    const bucket = Math.max(Math.floor(at / BUCKET_MS) + 1, nowBucket + 1);
    // Already filed for an earlier moment that is still to come: the tick re-files it then. A heartbeat moves the
    // deadline later, so filing on every heartbeat would only grow the bucket lists.
    if (rec.dueBucket > nowBucket && rec.dueBucket <= bucket) return;
    rec.dueBucket = bucket;
    let list = this.due.get(bucket);
    if (!list) this.due.set(bucket, (list = []));
    list.push(rec);
  }

  /** The same thresholds `assessConnected` applies to silence, without building anything. */
  private silenceClass(rec: WorkerRecord, now: number): SilenceClass {
    const silence = silenceMs(rec, now);
    if (silence > missedBoundMs(this.policy)) return 2;
    return silence > lateBoundMs(this.policy) ? 1 : 0;
  }

  private assess(rec: WorkerRecord): { state: HealthState; reasons: Reason[] } {
    const now = this.clock.monotonic();
    rec.silence = this.silenceClass(rec, now);
    if (rec.sessionId) this.fileDue(rec, now);
    return assessConnected(
      {
        silenceMs: silenceMs(rec, now),
        metrics: rec.metrics,
        sessionsInFlapWindow: countSince(rec.sessionStarts, now - this.policy.flapWindowMs),
        certExpiresInMs: rec.info.certNotAfter === null ? null : rec.info.certNotAfter - this.clock.wall(),
        certLifetimeMs: rec.info.certNotAfter === null || rec.info.certNotBefore == null ? null : rec.info.certNotAfter - rec.info.certNotBefore,
        replacementsInWindow: countSince(rec.replacements, now - this.policy.duplicateWindowMs),
        replacingAddresses: rec.replacingAddresses,
      },
      this.policy,
    );
  }

  private transition(rec: WorkerRecord, to: HealthState, reasons: Reason[]): void {
    const from = rec.state;
    if (from === to && sameReasons(rec.reasons, reasons)) {
      // The same codes are no news, but their figures are current ("memory 96 %" becomes 98 %, "expires in
      // 13.9d" counts down): the new reasons replace the old without an event. Equal ones are kept, since storing
      // them on every heartbeat only feeds the GC.
      if (!sameMessages(rec.reasons, reasons)) rec.reasons = reasons;
      return;
    }
    rec.state = to;
    rec.reasons = reasons;
    this.recordEvent(rec, from);
  }

  private recordEvent(rec: WorkerRecord, from: HealthState | null, reasons: Reason[] = rec.reasons): void {
    const event = this.newEvent(rec, from, rec.state, reasons);
    rec.events = this.history.push(rec.events, event);
    this.options.onEvent?.(event);
  }

  private newEvent(rec: WorkerRecord, from: HealthState | null, to: HealthState, reasons: Reason[]): HealthEvent {
    return { seq: ++this.eventSeq, at: this.clock.wall(), worker: rec.info.id, from, to, reasons };
  }

  /** Drops a worker and its own history; the event saying so stays in the fleet-wide history. */
  private remove(rec: WorkerRecord, reason: Reason): HealthEvent {
    this.workers.delete(rec.info.id);
    this.history.drop(rec.events);
    rec.events = null;
    const event = this.newEvent(rec, rec.state, "offline", [reason]);
    this.history.pushOrphan(event);
    this.options.onEvent?.(event);
    return event;
  }

  private *rings(): Generator<readonly HealthEvent[] | null> {
    for (const rec of this.workers.values()) yield rec.events;
  }

  /**
   * Forgets workers offline (after a goodbye or a revocation) for longer than the configured time, counted from
   * the event that made them offline. Part of the rare full check: days do not need a 100 ms tick.
   */
  private forgetLongOffline(): void {
    const after = this.options.forgetOfflineAfterMs ?? DEFAULT_FORGET_OFFLINE_AFTER_MS;
    if (after <= 0) return;
    const wall = this.clock.wall();
    for (const rec of this.workers.values()) {
      if (rec.sessionId !== null || rec.state !== "offline") continue;
      const last = rec.events?.at(-1);
      const since = last && last.to === "offline" ? last.at : rec.lastSeen;
      if (wall - since <= after) continue;
      this.remove(rec, {
        code: "expired_offline",
        message: `forgotten: offline for ${formatDuration(wall - since)}, more than ${formatDuration(after)}`,
      });
    }
  }

  private view(rec: WorkerRecord): WorkerView {
    const connected = rec.sessionId !== null;
    return {
      id: rec.info.id,
      hostname: rec.info.hostname,
      state: rec.state,
      reasons: rec.reasons,
      connected,
      lastHeartbeatAgeMs: connected ? Math.round(this.clock.monotonic() - rec.lastBeat) : null,
      connectedSince: rec.connectedSinceWall,
      firstSeen: rec.firstSeen,
      lastSeen: rec.lastSeen,
      agentVersion: rec.info.agentVersion,
      labels: rec.info.labels,
      platform: rec.info.platform,
      address: rec.info.address,
      heartbeats: rec.heartbeats,
      metrics: rec.metrics && copyMetrics(rec.metrics),
    };
  }
}
