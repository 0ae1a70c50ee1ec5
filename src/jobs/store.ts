import { z } from "zod";
import { ACTION_KINDS, TAIL_BYTES } from "../protocol/actions.js";
import { INVOCATION_STATUSES, type ActionEvent, type InvocationStatus } from "./api.js";
import { Job, type Invocation } from "./job.js";

export const DEFAULT_JOB_HISTORY = 500;
export const JOB_MAX_AGE_MS = 7 * 86_400_000;
/** Invocations kept over all jobs in the history: a fan-out to 10,000 workers is one job of 10,000. */
export const MAX_HISTORY_INVOCATIONS = 100_000;
/** Tails written to the state file over all jobs, newest jobs first; older tails are saved empty (sizes stay). */
export const PERSISTED_TAIL_BYTES = 16 * 1024 * 1024;
export const ACTION_EVENTS_PER_WORKER = 20;

/*
 * The jobs the manager remembers: every running one, and the finished ones up to --job-history and at most 7
 * days old (and MAX_HISTORY_INVOCATIONS invocations over all). They are saved in the state file's `jobs` field,
 * inline tails included, kept outputs not.
 */
export class JobStore {
  /** In the order the jobs started. */
  private readonly jobs = new Map<string, Job>();
  private invocations = 0;

  constructor(
    private readonly historyLimit = DEFAULT_JOB_HISTORY,
    private readonly maxAgeMs = JOB_MAX_AGE_MS,
  ) {}

  add(job: Job): void {
    this.jobs.set(job.id, job);
    this.invocations += job.invocations.length;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Newest first. */
  recent(): Job[] {
    return [...this.jobs.values()].reverse();
  }

  running(): Job[] {
    return [...this.jobs.values()].filter((j) => !j.done);
  }

  /** Removes the finished jobs beyond the bounds, oldest first; returns their ids. */
  prune(now: number): string[] {
    const removed: string[] = [];
    let finished = 0;
    for (const job of this.jobs.values()) if (job.done) finished++;
    for (const job of this.jobs.values()) {
      if (!job.done) continue;
      const tooMany = finished > this.historyLimit || this.invocations > MAX_HISTORY_INVOCATIONS;
      const tooOld = now - (job.endedAt ?? job.createdAt) > this.maxAgeMs;
      if (!tooMany && !tooOld) continue;
      this.jobs.delete(job.id);
      this.invocations -= job.invocations.length;
      finished--;
      removed.push(job.id);
    }
    return removed;
  }

  export(): PersistedJobs {
    let tailBudget = PERSISTED_TAIL_BYTES;
    const saved: PersistedJob[] = [];
    for (const job of this.recent()) {
      const invocations = job.invocations.map((inv) => {
        const size = inv.stdout.tail.length + inv.stderr.tail.length;
        const keep = size <= tailBudget;
        if (keep) tailBudget -= size;
        // The record itself when its tails fit: a copy of each of 10,000 records would be garbage promoted by the save.
        return keep ? inv : { ...inv, stdout: { ...inv.stdout, tail: "", truncated: inv.stdout.bytes > 0 }, stderr: { ...inv.stderr, tail: "", truncated: inv.stderr.bytes > 0 } };
      });
      saved.push({
        id: job.id,
        action: job.action,
        arguments: job.arguments,
        target: job.target,
        client: job.client,
        createdAt: job.createdAt,
        endedAt: job.endedAt,
        cancelled: job.cancelled,
        maxConcurrency: job.maxConcurrency,
        maxErrors: job.maxErrors,
        timeoutMs: job.timeoutMs,
        invocations,
      });
    }
    return { jobs: saved.reverse() };
  }

  /**
   * Jobs from the state file. Each is checked on its own: one that does not fit is left out, not the file. Returns
   * how many were left out.
   */
  restore(data: unknown): { restored: Job[]; refused: number } {
    const list = z.object({ jobs: z.array(z.unknown()) }).safeParse(data);
    if (!list.success) return { restored: [], refused: data === undefined ? 0 : 1 };
    const restored: Job[] = [];
    let refused = 0;
    for (const raw of list.data.jobs) {
      const parsed = PersistedJob.safeParse(raw);
      if (!parsed.success || this.jobs.has(parsed.data.id)) {
        refused++;
        continue;
      }
      const { invocations, cancelled, endedAt, ...init } = parsed.data;
      const job = new Job({ ...init, invocations: [] }, invocations as Invocation[]);
      job.cancelled = cancelled;
      job.endedAt = endedAt;
      this.add(job);
      restored.push(job);
    }
    return { restored, refused };
  }
}

/** Each worker's newest action outcomes, kept apart from its health events (so they never evict those). */
export class ActionEvents {
  private readonly byWorker = new Map<string, Array<{ at: number; jobId: string; action: string; status: InvocationStatus }>>();

  record(worker: string, jobId: string, action: string, status: InvocationStatus, at: number): void {
    let list = this.byWorker.get(worker);
    if (!list) this.byWorker.set(worker, (list = []));
    list.push({ at, jobId, action, status });
    if (list.length > ACTION_EVENTS_PER_WORKER) list.shift();
  }

  /** Newest first: one worker's, or everyone's. */
  list(worker: string | undefined, limit: number): ActionEvent[] {
    const all: Array<{ worker: string; at: number; jobId: string; action: string; status: InvocationStatus }> = [];
    const lists = worker === undefined ? [...this.byWorker.entries()] : [[worker, this.byWorker.get(worker) ?? []] as const];
    for (const [w, list] of lists) for (const e of list) all.push({ worker: w, ...e });
    all.sort((a, b) => b.at - a.at);
    return all.slice(0, Math.max(0, limit)).map((e) => ({ at: new Date(e.at).toISOString(), worker: e.worker, jobId: e.jobId, action: e.action, status: e.status }));
  }

  forget(worker: string): void {
    this.byWorker.delete(worker);
  }
}

// ---- the state file's `jobs` field ----

const Text = (max: number) => z.string().max(max);
const Output = z.object({ tail: Text(TAIL_BYTES * 4), bytes: z.number().int().min(0), truncated: z.boolean() });
const PersistedInvocation = z.object({
  worker: Text(63),
  id: Text(64),
  status: z.enum(INVOCATION_STATUSES),
  kind: z.enum(ACTION_KINDS),
  timeoutMs: z.number().int().min(0),
  exitCode: z.number().int().nullable(),
  signal: Text(16).nullable(),
  durationMs: z.number().int().min(0).nullable(),
  startedAt: Text(40).nullable(),
  endedAt: Text(40).nullable(),
  stdout: Output,
  stderr: Output,
  structured: z.record(z.string(), z.unknown()).optional(),
  error: Text(64).optional(),
  finishedAt: z.number().nullable(),
});
const PersistedTarget = z.union([
  z.object({ workerId: Text(63) }),
  z.object({ workerIds: z.array(Text(63)) }),
  z.object({ label: Text(320) }),
  z.object({ all: z.literal(true) }),
]);
export const PersistedJob = z.object({
  id: Text(64),
  action: Text(129),
  arguments: z.record(z.string(), z.unknown()),
  target: PersistedTarget,
  client: z.object({ name: Text(256), version: Text(256), operator: Text(64).optional() }),
  createdAt: z.number(),
  endedAt: z.number().nullable(),
  cancelled: z.boolean(),
  maxConcurrency: z.number().int().min(1),
  maxErrors: z.number().int().min(0),
  timeoutMs: z.number().int().min(0),
  invocations: z.array(PersistedInvocation),
});
export type PersistedJob = z.infer<typeof PersistedJob>;
export interface PersistedJobs {
  jobs: PersistedJob[];
}
