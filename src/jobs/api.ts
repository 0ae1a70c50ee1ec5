import type { HealthState } from "../core/health.js";
import type { ActionKind, Arguments, CatalogEntry, ParamDefs, RunStatus } from "../protocol/actions.js";

/*
 * The manager's side of acting on the fleet as its MCP tools (and its bench, and its tests) see it: the actions
 * the fleet offers, jobs that run one of them on a target under limits, and their outcomes. The implementation
 * is in this folder; the tools in src/mcp/ only call this.
 */

/** An invocation's status, counted the way AWS SSM Run Command counts them. */
export const INVOCATION_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "undeliverable",
  "lost",
  "skipped",
] as const satisfies readonly (RunStatus | string)[];
export type InvocationStatus = (typeof INVOCATION_STATUSES)[number];

/** Statuses that count against max_errors. */
export const ERROR_STATUSES: ReadonlySet<InvocationStatus> = new Set(["failed", "timed_out", "undeliverable", "lost"]);

export const JOB_STATUSES = ["running", "succeeded", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export type Target = { workerId: string } | { workerIds: string[] } | { label: string } | { all: true };

/** A count, or a percentage of the targets ("10%"), as SSM's MaxConcurrency and MaxErrors. */
export type Limit = number | `${number}%`;

/** Who started a job: the MCP client's name and version, and over HTTP the operator certificate's id. */
export interface Client {
  name: string;
  version: string;
  operator?: string;
}

export interface RunRequest {
  action: string;
  arguments: Arguments;
  target: Target;
  /** Default 10. */
  maxConcurrency?: Limit;
  /** Default 0: the first error stops new invocations; the rest are skipped. */
  maxErrors?: Limit;
  /** Shortens the action's own timeout; never lengthens it. */
  timeoutMs?: number;
}

/** One distinct action (name and definition), and who offers it. */
export interface ActionSummary {
  name: string;
  definitionHash: string;
  kind: ActionKind;
  description: string;
  destructive: boolean;
  params?: ParamDefs;
  inputSchema?: Record<string, unknown>;
  timeoutMs: number;
  /** How many workers (after the filter) offer this definition, and the first ids of them by id. */
  offeredBy: { count: number; first: string[] };
}

export interface ActionFilter {
  workerId?: string;
  label?: string;
  state?: HealthState;
}

/** What a request would do, resolved: the tools show it for confirmation, and bind a confirmation to it. */
export interface Plan {
  action: string;
  arguments: Arguments;
  /** True if any target's definition of the action is destructive. */
  destructive: boolean;
  /** The target workers, by id, sorted. */
  targets: string[];
  /** The target as asked for (a label, all, ids): the job records it beside the resolved ids. */
  target?: Target;
  /** The distinct definitions among the targets (usually one). */
  definitionHashes: string[];
  maxConcurrency: number;
  maxErrors: number;
  timeoutMs: number;
}

/** Why a request cannot be planned; `code` is stable, `message` is written for the assistant. */
export interface PlanError {
  code: "E_UNKNOWN_ACTION" | "E_NO_TARGETS" | "E_UNKNOWN_WORKER" | "E_INVALID_ARGUMENT" | "E_INVALID_LIMIT" | "E_TOO_BUSY";
  message: string;
  /** For E_INVALID_ARGUMENT: the parameter. */
  param?: string;
}

export interface OutputSummary {
  /** The last ≤ 4 KiB (as text). */
  tail: string;
  /** Everything the program wrote to the stream. */
  bytes: number;
  /** Whether `tail` is less than all of it. */
  truncated: boolean;
}

export interface InvocationView {
  worker: string;
  status: InvocationStatus;
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  /** On the worker's clock. */
  startedAt: string | null;
  endedAt: string | null;
  stdout: OutputSummary;
  stderr: OutputSummary;
  structured?: Record<string, unknown>;
  /** A code: SPAWN_FAILED, unknown_action, E_NOT_CONNECTED, ... */
  error?: string;
}

export type StatusCounts = Record<InvocationStatus, number>;

export interface JobSummary {
  id: string;
  action: string;
  arguments: Arguments;
  status: JobStatus;
  client: Client;
  createdAt: string;
  endedAt: string | null;
  targets: number;
  counts: StatusCounts;
}

export interface JobView extends JobSummary {
  target: Target;
  maxConcurrency: number;
  maxErrors: number;
  timeoutMs: number;
  /** In target order (sorted by worker id). */
  invocations: InvocationView[];
}

/** An invocation's whole kept output at the manager (at most 1 MiB over both streams). */
export interface KeptOutput {
  stdout: string;
  stderr: string;
  /** Whether the worker kept less than the program wrote. */
  truncated: boolean;
}

/** One of a worker's action outcomes, as get_worker_events lists them (their own bound; never health events). */
export interface ActionEvent {
  at: string;
  worker: string;
  jobId: string;
  action: string;
  status: InvocationStatus;
}

export interface JobService {
  listActions(filter: ActionFilter): ActionSummary[];
  /** The catalogue entry a worker offers under `action`, if any. */
  entry(workerId: string, action: string): CatalogEntry | undefined;
  plan(request: RunRequest): Plan | PlanError;
  /** Starts the plan as a job (audited). Throws only if the manager-wide limit of jobs is reached. */
  start(plan: Plan, client: Client): JobView;
  get(jobId: string): JobView | undefined;
  /** Newest first. */
  recent(): JobSummary[];
  output(jobId: string, workerId: string): KeptOutput | undefined;
  /** Starts nothing more; running invocations are cancelled. False if no such job is running. */
  cancel(jobId: string): boolean;
  /** Calls `listener` each time an invocation of the job reaches an ending status; returns the function that stops it. */
  onInvocationEnded(jobId: string, listener: (invocation: InvocationView, job: JobSummary) => void): () => void;
  /** Resolves when the job has ended, or after `ms`, or when `signal` aborts; whichever is first. */
  waitFor(jobId: string, ms: number, signal?: AbortSignal): Promise<void>;
  /** A worker's newest action events, newest first (at most `limit`). */
  actionEvents(workerId: string | undefined, limit: number): ActionEvent[];
}
