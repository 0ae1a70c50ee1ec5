import type {
  ActionEvent,
  ActionFilter,
  ActionSummary,
  Client,
  InvocationStatus,
  InvocationView,
  JobService,
  JobSummary,
  JobView,
  KeptOutput,
  Plan,
  PlanError,
  RunRequest,
  StatusCounts,
} from "../../src/jobs/api.js";
import { INVOCATION_STATUSES } from "../../src/jobs/api.js";
import type { CatalogEntry } from "../../src/protocol/actions.js";
import { checkArguments } from "../../src/protocol/arguments.js";

/*
 * A small JobService for tests of the MCP tools (the tools are what is under test, not the jobs): a fixed
 * catalogue on a fixed set of workers, jobs whose invocations the test ends by hand (or `autoFinish` ends one by
 * one), and a record of what the tools asked for. The real service is in src/jobs/ and has its own tests.
 */

export interface FakeAction {
  entry: CatalogEntry;
  definitionHash: string;
}

const emptyCounts = (): StatusCounts => Object.fromEntries(INVOCATION_STATUSES.map((s) => [s, 0])) as StatusCounts;
const emptyStream = () => ({ tail: "", bytes: 0, truncated: false });
const ENDED = new Set<InvocationStatus>(["succeeded", "failed", "timed_out", "cancelled", "undeliverable", "lost", "skipped"]);

export class FakeJobs implements JobService {
  workers: string[];
  actions = new Map<string, FakeAction>();
  jobs = new Map<string, JobView>();
  outputs = new Map<string, KeptOutput>();
  events: ActionEvent[] = [];
  /** When set, each invocation of a started job ends with this status, one every `autoFinishMs`. */
  autoFinish: InvocationStatus | null = "succeeded";
  autoFinishMs = 5;
  /** What the tools asked: plans, starts (with the client), cancels. */
  planned: RunRequest[] = [];
  started: Array<{ plan: Plan; client: Client }> = [];
  cancelled: string[] = [];
  /** When set, plan() answers this instead of planning. */
  planAnswer: PlanError | null = null;
  private seq = 0;
  private listeners = new Map<string, Set<(v: InvocationView, j: JobSummary) => void>>();
  private waiters = new Map<string, Set<() => void>>();

  constructor(workers: string[], actions: FakeAction[] = []) {
    this.workers = [...workers].sort();
    for (const a of actions) this.actions.set(a.entry.name, a);
  }

  listActions(_filter: ActionFilter): ActionSummary[] {
    return [...this.actions.values()].map((a) => ({
      name: a.entry.name,
      definitionHash: a.definitionHash,
      kind: a.entry.kind,
      description: a.entry.description,
      destructive: a.entry.destructive,
      ...(a.entry.params ? { params: a.entry.params } : {}),
      ...(a.entry.inputSchema ? { inputSchema: a.entry.inputSchema } : {}),
      timeoutMs: a.entry.timeoutMs,
      offeredBy: { count: this.workers.length, first: this.workers.slice(0, 10) },
    }));
  }

  entry(_workerId: string, action: string): CatalogEntry | undefined {
    return this.actions.get(action)?.entry;
  }

  plan(request: RunRequest): Plan | PlanError {
    this.planned.push(request);
    if (this.planAnswer) return this.planAnswer;
    const action = this.actions.get(request.action);
    if (!action) return { code: "E_UNKNOWN_ACTION", message: `no worker offers ${request.action}` };
    const t = request.target;
    const targets = "workerId" in t ? [t.workerId] : "workerIds" in t ? [...t.workerIds].sort() : this.workers;
    const unknown = targets.find((id) => !this.workers.includes(id));
    if (unknown) return { code: "E_UNKNOWN_WORKER", message: `no worker ${unknown}` };
    const checked = checkArguments(action.entry.params ?? {}, request.arguments);
    if (!checked.ok) return { code: "E_INVALID_ARGUMENT", param: checked.param, message: checked.message };
    return {
      action: request.action,
      arguments: request.arguments,
      destructive: action.entry.destructive,
      targets,
      definitionHashes: [action.definitionHash],
      maxConcurrency: typeof request.maxConcurrency === "number" ? request.maxConcurrency : 10,
      maxErrors: typeof request.maxErrors === "number" ? request.maxErrors : 0,
      timeoutMs: request.timeoutMs ?? action.entry.timeoutMs,
    };
  }

  start(plan: Plan, client: Client): JobView {
    this.started.push({ plan, client });
    const id = `job-${++this.seq}`;
    const counts = emptyCounts();
    counts.pending = plan.targets.length;
    const job: JobView = {
      id,
      action: plan.action,
      arguments: plan.arguments,
      status: "running",
      client,
      createdAt: new Date(Date.UTC(2026, 0, 1) + this.seq * 1000).toISOString(),
      endedAt: null,
      targets: plan.targets.length,
      counts,
      target: { workerIds: plan.targets },
      maxConcurrency: plan.maxConcurrency,
      maxErrors: plan.maxErrors,
      timeoutMs: plan.timeoutMs,
      invocations: plan.targets.map((worker) => ({
        worker,
        status: "pending",
        exitCode: null,
        signal: null,
        durationMs: null,
        startedAt: null,
        endedAt: null,
        stdout: emptyStream(),
        stderr: emptyStream(),
      })),
    };
    this.jobs.set(id, job);
    if (this.autoFinish) {
      const status = this.autoFinish;
      plan.targets.forEach((worker, i) => setTimeout(() => this.finish(id, worker, status), this.autoFinishMs * (i + 1)));
    }
    return structuredClone(job);
  }

  /** Ends one invocation as the runner would: its view, the counts, the listeners, and the job once all ended. */
  finish(jobId: string, worker: string, status: InvocationStatus, fields: Partial<InvocationView> = {}): void {
    const job = this.jobs.get(jobId);
    const v = job?.invocations.find((x) => x.worker === worker);
    if (!job || !v || ENDED.has(v.status)) return;
    job.counts[v.status]--;
    Object.assign(v, { exitCode: status === "succeeded" ? 0 : null, durationMs: 3, ...fields, status });
    job.counts[status]++;
    this.events.unshift({ at: new Date().toISOString(), worker, jobId, action: job.action, status });
    if (job.invocations.every((x) => ENDED.has(x.status))) {
      job.status = this.cancelled.includes(jobId) ? "cancelled" : job.counts.succeeded === job.targets ? "succeeded" : "failed";
      job.endedAt = new Date().toISOString();
    }
    for (const l of this.listeners.get(jobId) ?? []) l(structuredClone(v), this.summary(job));
    if (job.status !== "running") for (const w of this.waiters.get(jobId) ?? []) w();
  }

  private summary(j: JobView): JobSummary {
    const { target: _t, maxConcurrency: _c, maxErrors: _e, timeoutMs: _m, invocations: _i, ...s } = j;
    return structuredClone({ ...s, counts: { ...s.counts } });
  }

  /** Adds a finished job as if it had run, without the tools. */
  add(job: JobView): void {
    this.jobs.set(job.id, job);
  }

  /** The stored view itself: the tools only read it, and a copy of 10,000 invocations per page would be slow. */
  get(jobId: string): JobView | undefined {
    return this.jobs.get(jobId);
  }

  recent(): JobSummary[] {
    return [...this.jobs.values()].reverse().map((j) => this.summary(j));
  }

  output(jobId: string, workerId: string): KeptOutput | undefined {
    return this.outputs.get(`${jobId}/${workerId}`);
  }

  cancel(jobId: string): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.status !== "running") return false;
    this.cancelled.push(jobId);
    for (const v of job.invocations) if (!ENDED.has(v.status)) this.finish(jobId, v.worker, v.status === "pending" ? "skipped" : "cancelled");
    return true;
  }

  onInvocationEnded(jobId: string, listener: (v: InvocationView, j: JobSummary) => void): () => void {
    const set = this.listeners.get(jobId) ?? new Set();
    this.listeners.set(jobId, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  waitFor(jobId: string, ms: number, signal?: AbortSignal): Promise<void> {
    const job = this.jobs.get(jobId);
    if (!job || job.status !== "running" || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.waiters.get(jobId) ?? new Set();
      this.waiters.set(jobId, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener("abort", done);
    });
  }

  actionEvents(workerId: string | undefined, limit: number): ActionEvent[] {
    return this.events.filter((e) => workerId === undefined || e.worker === workerId).slice(0, limit);
  }
}
