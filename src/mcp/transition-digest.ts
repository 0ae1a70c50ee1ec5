import type { HealthState } from "../core/health.js";
import type { HealthEvent } from "../core/registry.js";

export type StateCounts = Partial<Record<HealthState, number>>;

/** Transitions of many workers that were not told one by one. */
export interface Digest {
  count: number;
  byState: StateCounts;
  someWorkers: string[];
}

/** Transitions of one worker that came too fast to tell one by one. */
export interface WorkerSummary {
  worker: string;
  count: number;
  byState: StateCounts;
  /** The state of its newest transition. */
  latest: HealthState;
  /** Since the first transition counted here. */
  spanMs: number;
}

export interface Flushed {
  digest: Digest | null;
  workers: WorkerSummary[];
}

export interface PerWorkerRate {
  /** Transitions of one worker told one by one in a row (healthy → degraded → unhealthy fits). */
  burst: number;
  /** Then one more each this often. */
  everyMs: number;
}

export const PER_WORKER_RATE: PerWorkerRate = { burst: 3, everyMs: 10_000 };

interface Pending {
  count: number;
  byState: StateCounts;
  latest: HealthState;
  since: number;
}

function count(byState: StateCounts, state: HealthState, n = 1): void {
  byState[state] = (byState[state] ?? 0) + n;
}

/**
 * Limits transition notifications so a reconnect storm (10,000 workers in 20 s) reaches the MCP client as a few
 * summaries instead of 10,000 messages it cannot usefully show, and so one flapping worker cannot use up what the
 * others need. Fleet-wide, up to `burst` transitions pass one by one, refilled at `perSecond`; the rest are counted
 * into one digest. Each worker also has its own small budget (PER_WORKER_RATE): beyond it, its transitions are
 * counted into a summary of that worker alone, told when its budget is back, and they take nothing from the fleet's
 * budget meanwhile. Another worker's transition is then still told by itself. Pure: the caller owns the timer and
 * the clock.
 */
export class TransitionDigest {
  private tokens: number;
  private last: number;
  private held: Digest | null = null;
  /** Workers whose own budget is not full: only those recently told, so at most burst + rate × refill time. */
  private readonly budgets = new Map<string, { tokens: number; at: number }>();
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly perSecond = 10,
    private readonly burst = 30,
    now = 0,
    private readonly perWorker: PerWorkerRate = PER_WORKER_RATE,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** True: tell this transition now. False: it was counted into a digest or into its worker's summary. */
  offer(e: HealthEvent, now: number): boolean {
    this.refill(now);
    const pending = this.pending.get(e.worker);
    if (pending) {
      // Told later, together: a transition of this worker told now would overtake those it counted.
      pending.count++;
      count(pending.byState, e.to);
      pending.latest = e.to;
      return false;
    }
    if (this.workerTokens(e.worker, now) < 1) {
      this.pending.set(e.worker, { count: 1, byState: { [e.to]: 1 }, latest: e.to, since: now });
      return false;
    }
    if (this.tokens >= 1 && this.held === null) {
      this.tokens -= 1;
      this.takeWorkerToken(e.worker, now);
      return true;
    }
    this.hold(e.worker, e.to, 1);
    return false;
  }

  /**
   * What was held since the last flush: the fleet digest, and the summaries of workers whose own budget is back.
   * A summary takes a token from the fleet's budget; when there is none, it joins the digest instead.
   */
  flush(now: number): Flushed {
    this.refill(now);
    const workers: WorkerSummary[] = [];
    for (const [worker, p] of this.pending) {
      if (this.workerTokens(worker, now) < 1) continue;
      this.pending.delete(worker);
      if (this.tokens >= 1 && this.held === null) {
        this.tokens -= 1;
        this.takeWorkerToken(worker, now);
        workers.push({ worker, count: p.count, byState: p.byState, latest: p.latest, spanMs: now - p.since });
      } else {
        for (const [state, n] of Object.entries(p.byState) as Array<[HealthState, number]>) this.hold(worker, state, n);
      }
    }
    for (const [worker] of this.budgets) if (this.workerTokens(worker, now) >= this.perWorker.burst) this.budgets.delete(worker);
    const digest = this.held;
    this.held = null;
    return { digest, workers };
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }

  private workerTokens(worker: string, now: number): number {
    const b = this.budgets.get(worker);
    if (!b) return this.perWorker.burst;
    return Math.min(this.perWorker.burst, b.tokens + (now - b.at) / this.perWorker.everyMs);
  }

  private takeWorkerToken(worker: string, now: number): void {
    this.budgets.set(worker, { tokens: this.workerTokens(worker, now) - 1, at: now });
  }

  private hold(worker: string, state: HealthState, n: number): void {
    this.held ??= { count: 0, byState: {}, someWorkers: [] };
    this.held.count += n;
    count(this.held.byState, state, n);
    if (this.held.someWorkers.length < 10 && !this.held.someWorkers.includes(worker)) this.held.someWorkers.push(worker);
  }
}
