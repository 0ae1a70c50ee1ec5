import type { HealthState } from "../core/health.js";
import { MAX_ACTION_TIMEOUT_MS, type CatalogEntry } from "../protocol/actions.js";
import { checkArguments } from "../protocol/arguments.js";
import type { Labels } from "../protocol/messages.js";
import type { Limit, Plan, PlanError, RunRequest, Target } from "./api.js";

/*
 * Planning a job, without I/O: which workers a target names, what its limits come to, and whether the arguments
 * fit every definition of the action among those workers. Refusals name what is wrong (the parameter, the worker)
 * so the assistant can fix its call; nothing is sent to any worker before a plan exists.
 */

export const DEFAULT_MAX_CONCURRENCY = 10;
export const DEFAULT_MAX_ERRORS = 0;
/** The most ids a refusal lists. */
const NAMED_IN_ERRORS = 5;

/** What planning needs to know of a worker: the registry's view of it. */
export interface PlanWorker {
  id: string;
  labels: Labels;
  state: HealthState;
}

/** A worker's definition of an action as its last known catalogue holds it. */
export interface OfferedEntry {
  entry: CatalogEntry;
  definitionHash: string;
}

export interface PlanInputs {
  /** The known workers, sorted by id. */
  workers: readonly PlanWorker[];
  /** A worker's definition of `action`, from its last known catalogue. */
  offered(workerId: string, action: string): OfferedEntry | undefined;
}

/** `role=db` matches that value; `role` matches any worker that has the label (as list_workers filters). */
export function matchesLabel(labels: Labels, label: string): boolean {
  const eq = label.indexOf("=");
  if (eq < 0) return Object.hasOwn(labels, label);
  return labels[label.slice(0, eq)] === label.slice(eq + 1);
}

const listed = (ids: readonly string[]) =>
  ids.slice(0, NAMED_IN_ERRORS).join(", ") + (ids.length > NAMED_IN_ERRORS ? ` and ${ids.length - NAMED_IN_ERRORS} more` : "");

const sortedUnique = (ids: readonly string[]) => [...new Set(ids)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * The workers a target names. Explicit ids must all be known and offer the action; a label or `all` picks the
 * known workers (in any state: one not connected at its turn is undeliverable, which the job then reports) whose
 * last known catalogue offers it.
 */
export function resolveTargets(target: Target, action: string, inputs: PlanInputs): { ids: string[] } | PlanError {
  if ("workerId" in target || "workerIds" in target) {
    const ids = sortedUnique("workerId" in target ? [target.workerId] : target.workerIds);
    if (ids.length === 0) return { code: "E_NO_TARGETS", message: "worker_ids is empty" };
    const known = new Set(inputs.workers.map((w) => w.id));
    const unknown = ids.filter((id) => !known.has(id));
    if (unknown.length > 0) return { code: "E_UNKNOWN_WORKER", message: `no such worker: ${listed(unknown)} (list_workers shows the known ones)` };
    const without = ids.filter((id) => !inputs.offered(id, action));
    if (without.length > 0) {
      return { code: "E_UNKNOWN_ACTION", message: `action ${action} is not offered by ${listed(without)} (as far as their last known catalogues say; list_actions shows who offers what)` };
    }
    return { ids };
  }
  const picked = "label" in target ? inputs.workers.filter((w) => matchesLabel(w.labels, target.label)) : inputs.workers;
  const ids = picked.filter((w) => inputs.offered(w.id, action)).map((w) => w.id);
  if (ids.length > 0) return { ids: sortedUnique(ids) };
  if (!inputs.workers.some((w) => inputs.offered(w.id, action))) {
    return { code: "E_UNKNOWN_ACTION", message: `no known worker offers action ${action} (list_actions shows what the fleet offers)` };
  }
  const where = "label" in target ? `with label ${target.label}` : "in the fleet";
  return { code: "E_NO_TARGETS", message: `no worker ${where} offers action ${action}` };
}

const PERCENT = /^(\d{1,3}(?:\.\d{1,3})?)%$/;
/** Far more than any fleet this manager holds; a figure beyond it is a mistake. */
const MAX_LIMIT = 1_000_000;

/**
 * A limit as a count of invocations: "N%" of the targets rounds up (SSM's way), and a concurrency is at least 1.
 * `name` is the tool's argument name, for the refusal.
 */
export function resolveLimit(limit: Limit, targets: number, kind: "concurrency" | "errors", name: string): number | PlanError {
  const min = kind === "concurrency" ? 1 : 0;
  const bad = (why: string): PlanError => ({ code: "E_INVALID_LIMIT", message: `${name}: ${why}`, param: name });
  if (typeof limit === "number") {
    if (!Number.isSafeInteger(limit) || limit < min || limit > MAX_LIMIT) return bad(`must be a whole number from ${min} to ${MAX_LIMIT}, or a percentage like "10%"`);
    return limit;
  }
  const m = PERCENT.exec(limit);
  const pct = m ? Number(m[1]) : NaN;
  if (!(pct >= 0 && pct <= 100) || (kind === "concurrency" && pct === 0)) {
    return bad(`must be a percentage ${kind === "concurrency" ? "above 0" : "from 0"} up to 100, like "10%", or a whole number`);
  }
  return Math.max(min, Math.ceil((pct * targets) / 100 - 1e-9));
}

/**
 * The plan for a request: targets, limits, timeout, and the arguments checked against each distinct definition of
 * the action among the targets (an MCP tool's are checked by its server; here only that they are an object).
 */
export function buildPlan(request: RunRequest, inputs: PlanInputs): Plan | PlanError {
  const resolved = resolveTargets(request.target, request.action, inputs);
  if ("code" in resolved) return resolved;
  const targets = resolved.ids;
  const definitions = new Map<string, CatalogEntry>();
  for (const id of targets) {
    const offered = inputs.offered(id, request.action)!;
    definitions.set(offered.definitionHash, offered.entry);
  }
  const args = request.arguments;
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    return { code: "E_INVALID_ARGUMENT", message: "arguments: must be an object", param: "arguments" };
  }
  let destructive = false;
  let longest = 0;
  let shortest = MAX_ACTION_TIMEOUT_MS;
  for (const entry of definitions.values()) {
    destructive ||= entry.destructive;
    longest = Math.max(longest, entry.timeoutMs);
    shortest = Math.min(shortest, entry.timeoutMs);
    if (entry.kind === "mcp") continue;
    const checked = checkArguments(entry.params ?? {}, args);
    if (!checked.ok) {
      const which = definitions.size > 1 ? ` (in one of the ${definitions.size} definitions of ${request.action} among the targets)` : "";
      return { code: "E_INVALID_ARGUMENT", message: `parameter ${checked.param}: ${checked.message}${which}`, param: checked.param };
    }
  }
  let timeoutMs = longest;
  if (request.timeoutMs !== undefined) {
    if (!Number.isSafeInteger(request.timeoutMs) || request.timeoutMs < 100) {
      return { code: "E_INVALID_ARGUMENT", message: "timeout: must be at least 100ms", param: "timeout" };
    }
    if (request.timeoutMs > shortest) {
      return { code: "E_INVALID_ARGUMENT", message: `timeout: must be at most ${shortest} ms, the action's own timeout`, param: "timeout" };
    }
    timeoutMs = request.timeoutMs;
  }
  const maxConcurrency = resolveLimit(request.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY, targets.length, "concurrency", "max_concurrency");
  if (typeof maxConcurrency !== "number") return maxConcurrency;
  const maxErrors = resolveLimit(request.maxErrors ?? DEFAULT_MAX_ERRORS, targets.length, "errors", "max_errors");
  if (typeof maxErrors !== "number") return maxErrors;
  return {
    action: request.action,
    arguments: args,
    destructive,
    targets,
    target: request.target,
    definitionHashes: [...definitions.keys()].sort(),
    maxConcurrency,
    maxErrors,
    timeoutMs,
  };
}

/** What the plan's timeout is for one worker's definition: never longer than that definition allows. */
export function invocationTimeout(plan: Pick<Plan, "timeoutMs">, entry: Pick<CatalogEntry, "timeoutMs">): number {
  return Math.min(plan.timeoutMs, entry.timeoutMs);
}
