import { z } from "zod";
import { INVOCATION_STATUSES, JOB_STATUSES, type InvocationView, type JobSummary, type JobView, type OutputSummary, type Plan } from "../jobs/api.js";
import { ACTION_KINDS } from "../protocol/actions.js";
import { clip } from "./answer-budget.js";
import { cursorOut, whole } from "./schemas.js";

// The answers of the action tools. Schemas are lean on purpose: tools/list has room for few words, and the tool
// descriptions say who each field comes from. Worker output is data: it appears only in the tail and output fields.

/** Target ids an answer or a confirmation request names; the count covers the rest. */
export const FIRST_IDS = 10;

/** A stream's tail as an answer holds it, in JSON characters (4 KiB of control bytes would be 24 KiB escaped). */
const TAIL_JSON_MAX = 6000;
/** A structured result inside a list of invocations, in JSON characters; a larger one only in get_job {worker_id}. */
const ROW_STRUCTURED_MAX = 16_000;
/** A structured result in get_job {job_id, worker_id}. */
export const ONE_STRUCTURED_MAX = 30_000;

// Free-form JSON (arguments, results, parameter definitions) is declared as any value: its shape is the action's.
const json = z.unknown();
const optionalJson = z.unknown().optional();
const Some = z.object({ count: whole, first: z.array(z.string()) });

const Stream = z.object({ tail: z.string(), bytes: whole, truncated: z.boolean() });

export const InvocationOut = z.object({
  worker: z.string(),
  status: z.enum(INVOCATION_STATUSES),
  exitCode: whole.nullable(),
  signal: z.string().nullable(),
  durationMs: z.number().nullable(),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  stdout: Stream,
  stderr: Stream,
  structured: optionalJson,
  structuredOmitted: z.boolean().optional(),
  error: z.string().optional(),
});
export type InvocationOut = z.infer<typeof InvocationOut>;

const Counts = z.record(z.string(), whole).describe("invocations by status");

export const JobSummaryOut = z.object({
  id: z.string(),
  action: z.string(),
  arguments: json,
  status: z.enum(JOB_STATUSES),
  client: z.object({ name: z.string(), version: z.string(), operator: z.string().optional().describe("the operator certificate's id, for a job started over HTTP") }),
  createdAt: z.string(),
  endedAt: z.string().nullable(),
  targets: whole,
  counts: Counts,
});
export type JobSummaryOut = z.infer<typeof JobSummaryOut>;

export const JobOut = JobSummaryOut.extend({ maxConcurrency: whole, maxErrors: whole, timeoutMs: whole });

const PlanOut = z.object({ action: z.string(), arguments: json, destructive: z.boolean(), targets: Some });

export const ListActionsOutput = z.object({
  actions: z.array(
    z.object({
      name: z.string(),
      definitionHash: z.string(),
      kind: z.enum(ACTION_KINDS),
      description: z.string(),
      destructive: z.boolean(),
      params: optionalJson,
      inputSchema: optionalJson,
      timeoutMs: whole,
      offeredBy: Some,
      omitted: z.string().optional(),
    }),
  ),
  total: whole.describe("distinct definitions; more than shown if the answer was cut"),
});

export const RunActionOutput = z.object({
  job: JobOut.optional(),
  invocations: z.array(InvocationOut).optional(),
  nextCursor: cursorOut.optional(),
  confirmation: z
    .object({ token: z.string(), expiresAt: z.string(), plan: PlanOut })
    .optional()
    .describe("nothing ran: call again with confirm=token"),
});

/** Declared once, in run_action's schema; get_job and cancel_job name it, so tools/list holds it once. */
const asInRunAction = (what: string) => z.unknown().describe(`${what}, as in run_action`);

export const GetJobOutput = z.object({
  jobs: z.array(z.unknown()).optional().describe("recent jobs, newest first: job as in run_action, without its limits"),
  job: asInRunAction("job").optional(),
  invocations: z.array(z.unknown()).optional().describe("as in run_action"),
  worker: z.string().optional(),
  output: z.object({ stdout: z.string(), stderr: z.string(), truncated: z.boolean() }).optional().describe("a page of the kept output"),
  structured: optionalJson,
  nextCursor: cursorOut,
});

export const CancelJobOutput = z.object({ job: asInRunAction("job") });
export function someIds(ids: readonly string[]): { count: number; first: string[] } {
  return { count: ids.length, first: ids.slice(0, FIRST_IDS) };
}

export function jobSummaryOut(j: JobSummary): JobSummaryOut {
  return {
    id: j.id,
    action: j.action,
    arguments: j.arguments,
    status: j.status,
    client: { name: clip(j.client.name, 128), version: clip(j.client.version, 128), ...(j.client.operator !== undefined ? { operator: clip(j.client.operator, 64) } : {}) },
    createdAt: j.createdAt,
    endedAt: j.endedAt,
    targets: j.targets,
    counts: { ...j.counts },
  };
}

export function jobOut(j: JobView): z.infer<typeof JobOut> {
  return { ...jobSummaryOut(j), maxConcurrency: j.maxConcurrency, maxErrors: j.maxErrors, timeoutMs: j.timeoutMs };
}

export function planOut(p: Plan): z.infer<typeof PlanOut> {
  return { action: p.action, arguments: p.arguments, destructive: p.destructive, targets: someIds(p.targets) };
}

/** The longest end of `s` whose JSON stays within `max` characters, never starting inside a surrogate pair. */
export function jsonTail(s: string, max: number): string {
  if (JSON.stringify(s).length <= max) return s;
  let lo = 0;
  let hi = s.length;
  // The smallest start whose suffix fits: JSON length only shrinks as the start moves right.
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (JSON.stringify(s.slice(mid)).length <= max) hi = mid;
    else lo = mid + 1;
  }
  const c = s.charCodeAt(lo);
  return s.slice(c >= 0xdc00 && c <= 0xdfff ? lo + 1 : lo);
}

function streamOut(o: OutputSummary): z.infer<typeof Stream> {
  const tail = jsonTail(o.tail, TAIL_JSON_MAX);
  return { tail, bytes: o.bytes, truncated: o.truncated || tail.length < o.tail.length };
}

/** An invocation as a list shows it: tails within their cap, a large structured result left to get_job {worker_id}. */
export function invocationOut(v: InvocationView, structuredMax = ROW_STRUCTURED_MAX): InvocationOut {
  const out: InvocationOut = {
    worker: v.worker,
    status: v.status,
    exitCode: v.exitCode,
    signal: v.signal,
    durationMs: v.durationMs,
    startedAt: v.startedAt,
    endedAt: v.endedAt,
    stdout: streamOut(v.stdout),
    stderr: streamOut(v.stderr),
  };
  if (v.structured !== undefined) {
    if (JSON.stringify(v.structured).length <= structuredMax) out.structured = v.structured;
    else out.structuredOmitted = true;
  }
  if (v.error !== undefined) out.error = clip(v.error, 64);
  return out;
}
