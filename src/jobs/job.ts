import type { ActionKind, Arguments } from "../protocol/actions.js";
import {
  ERROR_STATUSES,
  INVOCATION_STATUSES,
  type Client,
  type InvocationStatus,
  type InvocationView,
  type JobStatus,
  type JobSummary,
  type JobView,
  type OutputSummary,
  type StatusCounts,
  type Target,
} from "./api.js";

/*
 * One job as a state machine, without I/O: its invocations move pending → running → an ending status (or
 * straight from pending to undeliverable, skipped or cancelled). The job decides which invocation may start next
 * under its own max_concurrency, and skips the rest once more than max_errors have failed; the fleet-wide and
 * per-worker caps are the scheduler's (schedule.ts).
 */

export const ENDING_STATUSES: ReadonlySet<InvocationStatus> = new Set(
  INVOCATION_STATUSES.filter((s) => s !== "pending" && s !== "running"),
);

const EMPTY_OUTPUT: OutputSummary = { tail: "", bytes: 0, truncated: false };

/** What the tools show of an invocation (InvocationView), and what the manager keeps beside it. */
export interface Invocation extends InvocationView {
  /** Sent as actions.run's `invocation`: unique on the worker while it runs. */
  id: string;
  /** The worker's definition of the action, as the job started: its kind and the timeout it is given. */
  kind: ActionKind;
  timeoutMs: number;
  /** On the manager's wall clock: when it reached its ending status (for the worker's action events). */
  finishedAt: number | null;
}

/** How an invocation ended, as the runner or the job itself saw it. */
export interface Outcome {
  status: Exclude<InvocationStatus, "pending" | "running">;
  exitCode?: number | null;
  signal?: string | null;
  durationMs?: number | null;
  startedAt?: string | null;
  endedAt?: string | null;
  stdout?: OutputSummary;
  stderr?: OutputSummary;
  structured?: Record<string, unknown>;
  error?: string;
}

export interface JobInit {
  id: string;
  action: string;
  arguments: Arguments;
  target: Target;
  client: Client;
  createdAt: number;
  maxConcurrency: number;
  maxErrors: number;
  timeoutMs: number;
  invocations: Array<{ worker: string; kind: ActionKind; timeoutMs: number }>;
}

export function emptyCounts(): StatusCounts {
  return Object.fromEntries(INVOCATION_STATUSES.map((s) => [s, 0])) as StatusCounts;
}

export class Job {
  readonly id: string;
  readonly action: string;
  readonly arguments: Arguments;
  readonly target: Target;
  readonly client: Client;
  readonly createdAt: number;
  readonly maxConcurrency: number;
  readonly maxErrors: number;
  readonly timeoutMs: number;
  readonly invocations: Invocation[];
  readonly counts: StatusCounts = emptyCounts();
  endedAt: number | null = null;
  /** cancel_job (or the MCP request's cancellation) asked for it. */
  cancelled = false;
  /** Called as each invocation reaches its ending status, whichever way (run, skipped, cancelled). */
  onEnd: ((inv: Invocation) => void) | null = null;
  /** Below this index no invocation is pending: the scan for the next one starts here. */
  private cursor = 0;

  constructor(init: JobInit, restored?: Invocation[]) {
    this.id = init.id;
    this.action = init.action;
    this.arguments = init.arguments;
    this.target = init.target;
    this.client = init.client;
    this.createdAt = init.createdAt;
    this.maxConcurrency = init.maxConcurrency;
    this.maxErrors = init.maxErrors;
    this.timeoutMs = init.timeoutMs;
    this.invocations =
      restored ??
      init.invocations.map((t, i) => ({
        worker: t.worker,
        id: `${init.id}-${i}`,
        status: "pending" as InvocationStatus,
        kind: t.kind,
        timeoutMs: t.timeoutMs,
        exitCode: null,
        signal: null,
        durationMs: null,
        startedAt: null,
        endedAt: null,
        stdout: EMPTY_OUTPUT,
        stderr: EMPTY_OUTPUT,
        finishedAt: null,
      }));
    for (const inv of this.invocations) this.counts[inv.status]++;
  }

  get done(): boolean {
    return this.counts.pending === 0 && this.counts.running === 0;
  }

  get errors(): number {
    let n = 0;
    for (const s of ERROR_STATUSES) n += this.counts[s];
    return n;
  }

  /**
   * running while anything is pending or running; then cancelled if it was cancelled, succeeded if every
   * invocation succeeded or the errors stayed within max_errors (and nothing was skipped or cancelled), else failed.
   */
  get status(): JobStatus {
    if (!this.done) return "running";
    if (this.cancelled) return "cancelled";
    const ok = this.errors <= this.maxErrors && this.counts.skipped === 0 && this.counts.cancelled === 0;
    return ok ? "succeeded" : "failed";
  }

  /** The next invocation that may start now, if the job has room under max_concurrency; `free` says a worker has room. */
  next(free: (worker: string) => boolean): Invocation | undefined {
    if (this.cancelled || this.counts.running >= this.maxConcurrency) return undefined;
    let contiguous = true;
    for (let i = this.cursor; i < this.invocations.length; i++) {
      const inv = this.invocations[i]!;
      if (inv.status !== "pending") {
        if (contiguous) this.cursor = i + 1;
        continue;
      }
      if (free(inv.worker)) return inv;
      contiguous = false;
    }
    return undefined;
  }

  begin(inv: Invocation): void {
    if (inv.status !== "pending") throw new Error(`invocation ${inv.id} is ${inv.status}, not pending`);
    this.move(inv, "running");
  }

  /**
   * An invocation reached its ending status. False if it had already ended (a late answer after a cancel, say).
   * Past max_errors, every invocation still pending is skipped.
   */
  end(inv: Invocation, outcome: Outcome, now: number): boolean {
    if (ENDING_STATUSES.has(inv.status)) return false;
    inv.exitCode = outcome.exitCode ?? null;
    inv.signal = outcome.signal ?? null;
    inv.durationMs = outcome.durationMs ?? null;
    inv.startedAt = outcome.startedAt ?? null;
    inv.endedAt = outcome.endedAt ?? null;
    if (outcome.stdout) inv.stdout = outcome.stdout;
    if (outcome.stderr) inv.stderr = outcome.stderr;
    if (outcome.structured !== undefined) inv.structured = outcome.structured;
    if (outcome.error !== undefined) inv.error = outcome.error;
    inv.finishedAt = now;
    this.move(inv, outcome.status);
    if (this.errors > this.maxErrors) this.endPending("skipped", now);
    this.checkDone(now);
    return true;
  }

  /** Starts nothing more: pending invocations are cancelled; returns the running ones, for the runner to cancel. */
  cancel(now: number): Invocation[] {
    if (this.done) return [];
    this.cancelled = true;
    this.endPending("cancelled", now);
    this.checkDone(now);
    return this.invocations.filter((i) => i.status === "running");
  }

  /** Ends what is left without asking anyone (the manager is stopping or restarted): running ones are lost. */
  abandon(now: number, error: string): void {
    // Pending first: a lost one counts as an error, and must not turn the rest into skipped ones.
    for (const inv of this.invocations) {
      if (inv.status === "pending") this.end(inv, { status: "cancelled", error }, now);
    }
    for (const inv of this.invocations) {
      if (inv.status === "running") this.end(inv, { status: "lost", error }, now);
    }
    this.checkDone(now);
  }

  summary(): JobSummary {
    return {
      id: this.id,
      action: this.action,
      arguments: this.arguments,
      status: this.status,
      client: this.client,
      createdAt: new Date(this.createdAt).toISOString(),
      endedAt: this.endedAt === null ? null : new Date(this.endedAt).toISOString(),
      targets: this.invocations.length,
      counts: { ...this.counts },
    };
  }

  view(): JobView {
    return {
      ...this.summary(),
      target: this.target,
      maxConcurrency: this.maxConcurrency,
      maxErrors: this.maxErrors,
      timeoutMs: this.timeoutMs,
      invocations: this.invocations.map(invocationView),
    };
  }

  private endPending(status: "skipped" | "cancelled", now: number): void {
    for (let i = this.cursor; i < this.invocations.length; i++) {
      const inv = this.invocations[i]!;
      if (inv.status !== "pending") continue;
      inv.finishedAt = now;
      this.move(inv, status);
    }
    this.cursor = this.invocations.length;
  }

  private move(inv: Invocation, to: InvocationStatus): void {
    this.counts[inv.status]--;
    inv.status = to;
    this.counts[to]++;
    if (ENDING_STATUSES.has(to)) this.onEnd?.(inv);
  }

  private checkDone(now: number): void {
    if (this.endedAt === null && this.done) this.endedAt = now;
  }
}

export function invocationView(inv: Invocation): InvocationView {
  const view: InvocationView = {
    worker: inv.worker,
    status: inv.status,
    exitCode: inv.exitCode,
    signal: inv.signal,
    durationMs: inv.durationMs,
    startedAt: inv.startedAt,
    endedAt: inv.endedAt,
    stdout: inv.stdout,
    stderr: inv.stderr,
  };
  if (inv.structured !== undefined) view.structured = inv.structured;
  if (inv.error !== undefined) view.error = inv.error;
  return view;
}
