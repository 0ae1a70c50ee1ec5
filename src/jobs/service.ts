import { randomBytes } from "node:crypto";
import type { Clock } from "../core/clock.js";
import type { HealthEvent, Registry } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { ManagerMetrics } from "../metrics/sink.js";
import type { OutputChunk } from "../protocol/actions.js";
import type {
  ActionEvent,
  ActionFilter,
  ActionSummary,
  Client,
  InvocationView,
  JobService,
  JobSummary,
  KeptOutput,
  Plan,
  PlanError,
  RunRequest,
} from "./api.js";
import { CatalogueCache } from "./catalogues.js";
import { invocationView, Job, type Invocation } from "./job.js";
import { DEFAULT_OUTPUT_BUDGET_BYTES, OutputKeeper } from "./output.js";
import { buildPlan, invocationTimeout, matchesLabel, type PlanInputs } from "./plan.js";
import { cancelInvocation, runInvocation, type RunHooks, type RunOutcome, type WorkerLink } from "./runner.js";
import { DEFAULT_SCHEDULE_LIMITS, Scheduler, type ScheduleLimits } from "./schedule.js";
import { ActionEvents, DEFAULT_JOB_HISTORY, JobStore, type PersistedJobs } from "./store.js";

/** Jobs running at once: each holds its invocations in memory until it ends. */
export const MAX_RUNNING_JOBS = 100;
/** list_actions names this many of the workers offering a definition. */
const FIRST_IDS = 10;
/** After cancel, a worker has this long to answer `cancelled` (it sends SIGKILL after 5 s) before the call is dropped. */
const CANCEL_GRACE_MS = 10_000;
/** The audit line names at most this many target ids; the count is always there. */
const AUDITED_IDS = 100;

export interface JobServiceOptions {
  registry: Registry;
  /** manager.request and manager.connected. */
  link: WorkerLink;
  /** manager.onCatalog. */
  onCatalog(listener: (workerId: string, hash: string) => void): () => void;
  /** manager.onEvent: a worker removed from the registry takes its catalogue and action events with it. */
  onEvent?(listener: (event: HealthEvent) => void): () => void;
  clock: Clock;
  log: Logger;
  limits?: Partial<ScheduleLimits>;
  /** Finished jobs kept (--job-history); and at most 7 days. */
  jobHistory?: number;
  outputBudgetBytes?: number;
  /** A job started or ended: the state file should be saved. */
  changed?: () => void;
  /** The state file's `jobs` field, as loaded. */
  restored?: unknown;
  /** Where job and invocation ends are counted. */
  metrics?: Pick<ManagerMetrics, "jobEnded" | "invocationEnded">;
}

/** The service, plus what the manager itself needs of it. */
export interface JobManager extends JobService {
  readonly catalogues: CatalogueCache;
  /** What the state file keeps. */
  export(): PersistedJobs;
  /** The manager is stopping: nothing more starts; what still runs is lost (its session ends with the manager). */
  stop(): void;
}

export function createJobService(options: JobServiceOptions): JobManager {
  return new Service(options);
}

class Service implements JobManager {
  readonly catalogues: CatalogueCache;
  private readonly scheduler: Scheduler;
  private readonly store: JobStore;
  private readonly outputs: OutputKeeper;
  private readonly events = new ActionEvents();
  private readonly endListeners = new Map<string, Set<(inv: InvocationView, job: JobSummary) => void>>();
  private readonly doneWaiters = new Map<string, Set<() => void>>();
  /** Each running invocation's abort (runner.ts, RunHooks.abortable), by invocation id. */
  private readonly aborts = new Map<string, () => void>();
  private readonly unsubscribe: Array<() => void> = [];
  private readonly reported = new Set<string>();
  private stopped = false;

  constructor(private readonly o: JobServiceOptions) {
    this.catalogues = new CatalogueCache(o.link, o.log);
    // An option left undefined keeps its default (a spread would put the undefined in).
    this.scheduler = new Scheduler({
      maxInFlight: o.limits?.maxInFlight ?? DEFAULT_SCHEDULE_LIMITS.maxInFlight,
      maxPerWorker: o.limits?.maxPerWorker ?? DEFAULT_SCHEDULE_LIMITS.maxPerWorker,
    });
    this.store = new JobStore(o.jobHistory ?? DEFAULT_JOB_HISTORY);
    this.outputs = new OutputKeeper(o.outputBudgetBytes ?? DEFAULT_OUTPUT_BUDGET_BYTES);
    this.unsubscribe.push(o.onCatalog((workerId, hash) => this.catalogues.noteNamed(workerId, hash)));
    if (o.onEvent) {
      this.unsubscribe.push(
        o.onEvent((e) => {
          if (e.reasons.some((r) => r.code === "forgotten" || r.code === "expired_offline")) {
            this.catalogues.forget(e.worker);
            this.events.forget(e.worker);
          }
        }),
      );
    }
    this.restore(o.restored);
  }

  listActions(filter: ActionFilter): ActionSummary[] {
    const byCatalogue = new Map<string, string[]>();
    for (const w of this.workers()) {
      if (filter.workerId !== undefined && w.id !== filter.workerId) continue;
      if (filter.state !== undefined && w.state !== filter.state) continue;
      if (filter.label !== undefined && !matchesLabel(w.labels, filter.label)) continue;
      const catalogue = this.catalogues.of(w.id);
      if (!catalogue) continue;
      let ids = byCatalogue.get(catalogue.hash);
      if (!ids) byCatalogue.set(catalogue.hash, (ids = []));
      ids.push(w.id);
    }
    const byDefinition = new Map<string, { summary: ActionSummary; firsts: string[] }>();
    for (const [hash, ids] of byCatalogue) {
      const catalogue = this.catalogues.of(ids[0]!);
      if (!catalogue || catalogue.hash !== hash) continue;
      for (const { entry, definitionHash } of catalogue.byName.values()) {
        const key = `${entry.name} ${definitionHash}`;
        let row = byDefinition.get(key);
        if (!row) {
          const summary: ActionSummary = {
            name: entry.name,
            definitionHash,
            kind: entry.kind,
            description: entry.description,
            destructive: entry.destructive,
            timeoutMs: entry.timeoutMs,
            offeredBy: { count: 0, first: [] },
          };
          if (entry.params) summary.params = entry.params;
          if (entry.inputSchema) summary.inputSchema = entry.inputSchema;
          byDefinition.set(key, (row = { summary, firsts: [] }));
        }
        row.summary.offeredBy.count += ids.length;
        row.firsts.push(...ids.slice(0, FIRST_IDS));
      }
    }
    const rows = [...byDefinition.values()].map(({ summary, firsts }) => {
      summary.offeredBy.first = firsts.sort(byText).slice(0, FIRST_IDS);
      return summary;
    });
    return rows.sort((a, b) => byText(a.name, b.name) || byText(a.definitionHash, b.definitionHash));
  }

  entry(workerId: string, action: string) {
    return this.catalogues.offered(workerId, action)?.entry;
  }

  plan(request: RunRequest): Plan | PlanError {
    if (this.store.running().length >= MAX_RUNNING_JOBS) {
      return { code: "E_TOO_BUSY", message: `${MAX_RUNNING_JOBS} jobs are running; wait for one to end, or cancel one` };
    }
    return buildPlan(request, this.planInputs());
  }

  start(plan: Plan, client: Client): ReturnType<JobService["start"]> {
    if (this.stopped) throw Object.assign(new Error("the manager is stopping"), { code: "E_TOO_BUSY" });
    if (this.store.running().length >= MAX_RUNNING_JOBS) {
      throw Object.assign(new Error(`${MAX_RUNNING_JOBS} jobs are running`), { code: "E_TOO_BUSY" });
    }
    const now = this.o.clock.wall();
    const id = `job-${randomBytes(6).toString("hex")}`;
    const allowed = new Set(plan.definitionHashes);
    // Each worker's definition as the job starts. One that changed since the plan (which a confirmation is bound
    // to) is not run: what was confirmed is not what the worker would run.
    const changed: number[] = [];
    const targets = plan.targets.map((worker, i) => {
      const offered = this.catalogues.offered(worker, plan.action);
      if (!offered || !allowed.has(offered.definitionHash)) changed.push(i);
      return { worker, kind: offered?.entry.kind ?? "command", timeoutMs: offered ? invocationTimeout(plan, offered.entry) : plan.timeoutMs };
    });
    const job = new Job({
      id,
      action: plan.action,
      arguments: plan.arguments,
      target: plan.target ?? { workerIds: plan.targets },
      client,
      createdAt: now,
      maxConcurrency: plan.maxConcurrency,
      maxErrors: plan.maxErrors,
      timeoutMs: plan.timeoutMs,
      invocations: targets,
    });
    this.watch(job);
    this.store.add(job);
    this.outputs.open(id);
    this.scheduler.add(job);
    this.audit(job, "job started");
    this.o.changed?.();
    for (const i of changed) this.scheduler.end(job, job.invocations[i]!, { status: "failed", error: "E_DEFINITION_CHANGED" }, now);
    this.settle(job);
    this.pump();
    return job.view();
  }

  get(jobId: string) {
    return this.store.get(jobId)?.view();
  }

  recent(): JobSummary[] {
    return this.store.recent().map((j) => j.summary());
  }

  output(jobId: string, workerId: string): KeptOutput | undefined {
    const job = this.store.get(jobId);
    const inv = job?.invocations.find((i) => i.worker === workerId);
    if (!job || !inv) return undefined;
    // Dropped for the budget, or from before a restart: the tails are what is left.
    return this.outputs.get(jobId, workerId) ?? { stdout: inv.stdout.tail, stderr: inv.stderr.tail, truncated: inv.stdout.truncated || inv.stderr.truncated };
  }

  cancel(jobId: string): boolean {
    const job = this.store.get(jobId);
    if (!job || job.done) return false;
    const running = this.scheduler.cancel(job, this.o.clock.wall());
    this.settle(job);
    for (const inv of running) {
      void cancelInvocation(this.o.link, inv.worker, inv.id);
      const abort = this.aborts.get(inv.id);
      if (abort) setTimeout(abort, CANCEL_GRACE_MS).unref();
    }
    return true;
  }

  onInvocationEnded(jobId: string, listener: (invocation: InvocationView, job: JobSummary) => void): () => void {
    let set = this.endListeners.get(jobId);
    if (!set) this.endListeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.endListeners.get(jobId) === set) this.endListeners.delete(jobId);
    };
  }

  waitFor(jobId: string, ms: number, signal?: AbortSignal): Promise<void> {
    const job = this.store.get(jobId);
    if (!job || job.done || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.doneWaiters.get(jobId);
      if (!set) this.doneWaiters.set(jobId, (set = new Set()));
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", finish);
        set.delete(finish);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      signal?.addEventListener("abort", finish, { once: true });
      set.add(finish);
    });
  }

  actionEvents(workerId: string | undefined, limit: number): ActionEvent[] {
    return this.events.list(workerId, limit);
  }

  export(): PersistedJobs {
    return this.store.export();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    const running = this.store.running();
    this.scheduler.abandonAll(this.o.clock.wall(), "E_MANAGER_STOPPED");
    for (const job of running) this.settle(job);
    for (const abort of [...this.aborts.values()]) abort();
  }

  // ---- the parts ----

  private workers() {
    return this.o.registry.briefs().sort((a, b) => byText(a.id, b.id));
  }

  private planInputs(): PlanInputs {
    return { workers: this.workers(), offered: (id, action) => this.catalogues.offered(id, action) };
  }

  /** Starts every invocation the limits allow now. */
  private pump(): void {
    if (this.stopped) return;
    for (const { job, inv } of this.scheduler.take()) this.run(job, inv);
  }

  private run(job: Job, inv: Invocation): void {
    const order = { worker: inv.worker, invocation: inv.id, action: job.action, kind: inv.kind, arguments: job.arguments, timeoutMs: inv.timeoutMs };
    const run = new Run(job, inv, this.outputs, this.aborts);
    runInvocation(this.o.link, order, run).then(
      (outcome) => this.ended(run, outcome),
      (err: unknown) => this.ended(run, undefined, err),
    );
  }

  /** One run's answer (or the error it failed with in the manager) reaches its job; then the next ones start. */
  private ended({ job, inv }: Run, outcome: RunOutcome | undefined, failure?: unknown): void {
    try {
      if (!outcome) throw failure;
      if (outcome.partial) this.outputs.markPartial(job.id, inv.worker);
      for (const stream of ["stdout", "stderr"] as const) {
        const summary = outcome[stream];
        if (summary && summary.tail !== "") summary.tail = this.outputs.shareTail(job.id, inv.worker, stream, summary.tail);
      }
      // The job copies the fields it keeps (not `partial`, which the kept output has now).
      this.scheduler.end(job, inv, outcome, this.o.clock.wall());
    } catch (err) {
      this.o.log.error({ job: job.id, worker: inv.worker, err: errorMessage(err) }, "invocation failed in the manager");
      this.scheduler.end(job, inv, { status: "failed", error: "E_INTERNAL" }, this.o.clock.wall());
    }
    this.aborts.delete(inv.id);
    this.settle(job);
    this.pump();
  }

  /** Each ending invocation becomes an action event and reaches the job's listeners. */
  private watch(job: Job): void {
    job.onEnd = (inv) => {
      this.o.metrics?.invocationEnded(inv.status);
      this.events.record(inv.worker, job.id, job.action, inv.status, inv.finishedAt ?? this.o.clock.wall());
      const listeners = this.endListeners.get(job.id);
      if (!listeners || listeners.size === 0) return;
      const view = invocationView(inv);
      const summary = job.summary();
      for (const listener of [...listeners]) {
        try {
          listener(view, summary);
        } catch (err) {
          this.o.log.error({ job: job.id, err: errorMessage(err) }, "invocation listener failed");
        }
      }
    };
  }

  /** Once a job has ended: audited, saved, its waiters woken, its outputs droppable, the history pruned. */
  private settle(job: Job): void {
    if (!job.done || this.reported.has(job.id)) return;
    this.reported.add(job.id);
    this.o.metrics?.jobEnded(job.status);
    this.audit(job, "job ended");
    this.outputs.finished(job.id);
    for (const wake of [...(this.doneWaiters.get(job.id) ?? [])]) wake();
    this.doneWaiters.delete(job.id);
    this.endListeners.delete(job.id);
    this.prune();
    this.o.changed?.();
  }

  private prune(): void {
    for (const id of this.store.prune(this.o.clock.wall())) {
      this.outputs.drop(id);
      this.reported.delete(id);
    }
  }

  private audit(job: Job, msg: string): void {
    const s = job.summary();
    this.o.log.info(
      {
        audit: "job",
        jobId: job.id,
        client: job.client,
        action: job.action,
        arguments: job.arguments,
        target: job.target,
        targets: s.targets,
        workers: job.invocations.slice(0, AUDITED_IDS).map((i) => i.worker),
        counts: s.counts,
        status: s.status,
        createdAt: s.createdAt,
        endedAt: s.endedAt,
      },
      msg,
    );
  }

  /**
   * Jobs from the state file. One that was running when the manager stopped (or died) has ended: its sessions
   * ended with the manager, so what ran is lost (the workers killed it) and what had not started is cancelled.
   */
  private restore(data: unknown): void {
    if (data === undefined) return;
    const { restored, refused } = this.store.restore(data);
    const now = this.o.clock.wall();
    for (const job of restored) {
      for (const inv of job.invocations) {
        if (inv.finishedAt !== null && inv.status !== "pending" && inv.status !== "running") {
          this.events.record(inv.worker, job.id, job.action, inv.status, inv.finishedAt);
        }
      }
      this.watch(job);
      if (job.done) {
        this.reported.add(job.id);
        this.outputs.open(job.id);
        this.outputs.finished(job.id);
        continue;
      }
      job.abandon(now, "E_MANAGER_RESTARTED");
      this.outputs.open(job.id);
      this.settle(job);
    }
    this.prune();
    if (restored.length > 0 || refused > 0) this.o.log.info({ jobs: restored.length, refused }, "restored the job history");
  }
}

/**
 * One running invocation as the runner's hooks: a single object rather than closures over the job, since a fan-out
 * holds a thousand of them for as long as each takes.
 */
class Run implements RunHooks {
  constructor(
    readonly job: Job,
    readonly inv: Invocation,
    private readonly outputs: OutputKeeper,
    private readonly aborts: Map<string, () => void>,
  ) {}

  onOutput(chunk: OutputChunk): void {
    this.outputs.append(this.job.id, this.inv.worker, chunk);
  }

  abortable(abort: () => void): void {
    this.aborts.set(this.inv.id, abort);
  }
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
