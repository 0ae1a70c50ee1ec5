import { z } from "zod";
import { duration } from "../config/duration.js";
import type { Limit, PlanError, RunRequest, Target } from "../jobs/api.js";
import { type Arguments, MAX_ACTION_TIMEOUT_MS } from "../protocol/actions.js";

// run_action's arguments as the job service takes them. The input schema only says the types; the rules live here,
// so that every refusal begins with E_INVALID_ARGUMENT and names the parameter, as the plan's own refusals do.

/** The most worker ids one target may list. */
export const MAX_TARGET_IDS = 10_000;

export interface RunInput {
  action: string;
  arguments: Arguments;
  target: { worker_id?: string; worker_ids?: string[]; label?: string; all?: boolean };
  max_concurrency?: number | string;
  max_errors?: number | string;
  timeout?: string;
}

const invalid = (param: string, rule: string) => `E_INVALID_ARGUMENT: ${param}: ${rule}`;

function parseTarget(t: RunInput["target"]): Target | string {
  const given = (["worker_id", "worker_ids", "label", "all"] as const).filter((k) => t[k] !== undefined && !(k === "all" && t.all === false));
  if (given.length !== 1) {
    return invalid("target", `must name exactly one of worker_id, worker_ids, label, all (got ${given.length === 0 ? "none" : given.join(", ")})`);
  }
  if (t.worker_id !== undefined) return { workerId: t.worker_id };
  if (t.worker_ids !== undefined) {
    if (t.worker_ids.length === 0) return invalid("target.worker_ids", "must list at least one worker id");
    return { workerIds: [...new Set(t.worker_ids)] };
  }
  if (t.label !== undefined) return { label: t.label };
  return { all: true };
}

/** A count or a percentage ("10%"); `min` is the smallest count allowed. */
function parseLimit(param: string, value: number | string | undefined, min: number): { limit?: Limit } | { error: string } {
  if (value === undefined) return {};
  const rule = `must be a whole number of at least ${min}, or a percentage of the targets such as "10%"`;
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= min ? { limit: value } : { error: invalid(param, rule) };
  const m = /^(\d{1,3}(?:\.\d{1,2})?)%$/.exec(value.trim());
  const pct = m ? Number(m[1]) : NaN;
  return pct <= 100 && (min === 0 || pct > 0) ? { limit: `${pct}%` } : { error: invalid(param, `${rule}, at most 100%`) };
}

const Timeout = duration({ min: 100, max: MAX_ACTION_TIMEOUT_MS });

/** The request the job service plans, or an E_INVALID_ARGUMENT text. */
export function runRequest(input: RunInput): RunRequest | string {
  const target = parseTarget(input.target);
  if (typeof target === "string") return target;
  const maxConcurrency = parseLimit("max_concurrency", input.max_concurrency, 1);
  if ("error" in maxConcurrency) return maxConcurrency.error;
  const maxErrors = parseLimit("max_errors", input.max_errors, 0);
  if ("error" in maxErrors) return maxErrors.error;
  const request: RunRequest = { action: input.action, arguments: input.arguments, target };
  if (maxConcurrency.limit !== undefined) request.maxConcurrency = maxConcurrency.limit;
  if (maxErrors.limit !== undefined) request.maxErrors = maxErrors.limit;
  if (input.timeout !== undefined) {
    const t = Timeout.safeParse(input.timeout);
    if (!t.success) return invalid("timeout", t.error.issues[0]?.message ?? "must be a duration such as 30s");
    request.timeoutMs = t.data;
  }
  return request;
}

/** A plan's refusal as the tool's error text: its code, and the parameter when one is at fault. */
export function planErrorText(e: PlanError): string {
  const param = e.param !== undefined && !e.message.includes(e.param) ? `arguments.${e.param}: ` : "";
  return `${e.code}: ${param}${e.message}`;
}

export const TargetInput = z
  .object({
    worker_id: z.string().min(1).max(63).optional(),
    worker_ids: z.array(z.string().min(1).max(63)).max(MAX_TARGET_IDS).optional(),
    label: z.string().min(1).max(320).optional(),
    all: z.boolean().optional(),
  })
  .describe("exactly one of these");
