import type { Invocation, Job, Outcome } from "./job.js";

export interface ScheduleLimits {
  /** Invocations in flight over the whole fleet at once (--max-invocations). */
  maxInFlight: number;
  /** Invocations in flight on one worker at once, over all jobs (--max-worker-invocations). */
  maxPerWorker: number;
}

export const DEFAULT_SCHEDULE_LIMITS: ScheduleLimits = { maxInFlight: 1000, maxPerWorker: 4 };

/**
 * Which invocations start next over all running jobs, without I/O: each job's max_concurrency (the job's own),
 * the per-worker cap and the fleet-wide cap. Jobs are served oldest first; an invocation whose worker is at its
 * cap waits, and a later one of the same job may go first.
 */
export class Scheduler {
  private readonly jobs: Job[] = [];
  private readonly perWorker = new Map<string, number>();
  private inFlightCount = 0;

  constructor(private readonly limits: ScheduleLimits) {}

  get inFlight(): number {
    return this.inFlightCount;
  }

  runningOn(worker: string): number {
    return this.perWorker.get(worker) ?? 0;
  }

  add(job: Job): void {
    if (!job.done) this.jobs.push(job);
  }

  /** Marks running, and returns, every invocation that may start now. */
  take(): Array<{ job: Job; inv: Invocation }> {
    const started: Array<{ job: Job; inv: Invocation }> = [];
    const free = (worker: string) => this.runningOn(worker) < this.limits.maxPerWorker;
    for (const job of this.jobs) {
      while (this.inFlightCount < this.limits.maxInFlight) {
        const inv = job.next(free);
        if (!inv) break;
        job.begin(inv);
        this.perWorker.set(inv.worker, this.runningOn(inv.worker) + 1);
        this.inFlightCount++;
        started.push({ job, inv });
      }
      if (this.inFlightCount >= this.limits.maxInFlight) break;
    }
    return started;
  }

  /** An invocation ended (false if it had already): its worker's and the fleet's slots are free again. */
  end(job: Job, inv: Invocation, outcome: Outcome, now: number): boolean {
    const wasRunning = inv.status === "running";
    if (!job.end(inv, outcome, now)) return false;
    if (wasRunning) this.release(inv.worker);
    this.forgetIfDone(job);
    return true;
  }

  /** The job was cancelled: its pending invocations are; the running ones are returned, still holding their slots. */
  cancel(job: Job, now: number): Invocation[] {
    const running = job.cancel(now);
    this.forgetIfDone(job);
    return running;
  }

  /** Ends every job without asking anyone (see Job.abandon). */
  abandonAll(now: number, error: string): void {
    for (const job of [...this.jobs]) {
      for (const inv of job.invocations) if (inv.status === "running") this.release(inv.worker);
      job.abandon(now, error);
      this.forgetIfDone(job);
    }
  }

  private release(worker: string): void {
    const n = this.runningOn(worker) - 1;
    if (n > 0) this.perWorker.set(worker, n);
    else this.perWorker.delete(worker);
    this.inFlightCount--;
  }

  private forgetIfDone(job: Job): void {
    if (!job.done) return;
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
  }
}
