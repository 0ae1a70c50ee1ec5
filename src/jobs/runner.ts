import type { z } from "zod";
import { isFleetError } from "../errors.js";
import type { ActionKind, Arguments, OutputChunk, RunResult } from "../protocol/actions.js";
import type { CallOptions } from "../protocol/correlator.js";
import type { Progress } from "../protocol/messages.js";
import { DIAGNOSTIC_OUTPUTS } from "../protocol/diagnostics.js";
import type { MethodName, MethodParams, MethodResult } from "../protocol/methods.js";
import { ERROR_CODE_PATTERN } from "../protocol/text.js";
import type { Outcome } from "./job.js";

/** The worker has this long beyond the invocation's own timeout to answer: it needs time to kill and report. */
export const ANSWER_GRACE_MS = 10_000;
/** actions.cancel is answered at once; the run's own answer follows when the process group is gone. */
const CANCEL_TIMEOUT_MS = 5_000;

/** The manager's side of the socket as the runner uses it (Manager.request and Manager.connected). */
export interface WorkerLink {
  request<M extends MethodName>(workerId: string, method: M, params: MethodParams<M>, options: CallOptions): Promise<MethodResult<M>>;
  connected(workerId: string): boolean;
}

export interface RunOrder {
  worker: string;
  invocation: string;
  action: string;
  kind: ActionKind;
  arguments: Arguments;
  timeoutMs: number;
}

export interface RunHooks {
  onOutput(chunk: OutputChunk): void;
  /**
   * Given the function that aborts the request (for a cancel the worker never answered): the invocation is then
   * cancelled.
   */
  abortable?: (abort: () => void) => void;
}

/** How a run ended, with whether the worker kept less of the output than the program wrote. */
export type RunOutcome = Outcome & { partial?: boolean };

/**
 * Runs one invocation on its worker: actions.run with the output streamed in progress frames, the answer checked
 * (a built-in's structured result against its output schema), and every failure sorted into an invocation status.
 * A fan-out holds a thousand of these in flight for as long as each takes, so a run is one call object and one
 * promise reaction, not an async function's frame and closures (docs/performance.md, "Fan-out of an action").
 */
export function runInvocation(link: WorkerLink, order: RunOrder, hooks: RunHooks): Promise<RunOutcome> {
  // Not connected when its turn came: nothing was sent. (An error thrown before the frame left is the same; see
  // classifyFailure.)
  if (!link.connected(order.worker)) return Promise.resolve({ status: "undeliverable", error: "E_NOT_CONNECTED" });
  const call = new RunCall(order, hooks);
  let answer: Promise<RunResult>;
  try {
    answer = link.request(order.worker, "actions.run", { invocation: order.invocation, action: order.action, arguments: order.arguments, timeoutMs: order.timeoutMs }, call);
  } catch (err) {
    return Promise.resolve(classifyFailure(err));
  }
  return answer.then((result) => outcomeOf(order, result), classifyFailure);
}

/** The call's options for one run: the streamed output goes to the hooks, as does the function that aborts it. */
class RunCall implements CallOptions {
  readonly timeoutMs: number;

  constructor(
    order: RunOrder,
    private readonly hooks: RunHooks,
  ) {
    this.timeoutMs = order.timeoutMs + ANSWER_GRACE_MS;
  }

  onProgress(p: Progress): void {
    if (p.output) this.hooks.onOutput(p.output);
  }

  abortable(abort: () => void): void {
    this.hooks.abortable?.(abort);
  }
}

/** The worker's answer as an outcome; a built-in whose result does not match its output schema failed. */
export function outcomeOf(order: Pick<RunOrder, "action" | "kind">, result: RunResult, schemas: Readonly<Record<string, z.ZodType>> = DIAGNOSTIC_OUTPUTS): RunOutcome {
  const outcome: RunOutcome = {
    status: result.status,
    exitCode: result.exitCode,
    signal: result.signal,
    durationMs: result.durationMs,
    startedAt: result.startedAt,
    endedAt: result.endedAt,
    stdout: { tail: result.stdout.tail, bytes: result.stdout.bytes, truncated: result.stdout.bytes > Buffer.byteLength(result.stdout.tail) },
    stderr: { tail: result.stderr.tail, bytes: result.stderr.bytes, truncated: result.stderr.bytes > Buffer.byteLength(result.stderr.tail) },
    partial: result.stdout.kept < result.stdout.bytes || result.stderr.kept < result.stderr.bytes,
  };
  if (result.error !== undefined) outcome.error = result.error;
  if (result.structuredOmitted) outcome.error ??= "STRUCTURED_OMITTED";
  if (result.structured !== undefined) {
    const schema = order.kind === "builtin" && Object.hasOwn(schemas, order.action) ? schemas[order.action] : undefined;
    if (schema && !schema.safeParse(result.structured).success) {
      // The worker's data is not what the diagnostic promises: none of it reaches the assistant as a result.
      return { ...outcome, status: "failed", error: "E_BAD_RESPONSE" };
    }
    outcome.structured = result.structured;
  }
  return outcome;
}

/**
 * A request that did not end with an answer. E_NOT_CONNECTED is thrown in two places: before the frame was
 * written (the session had just closed, or the write threw: the correlator then gives the cause), which is
 * undeliverable; and when the session ended while the call was outstanding, which is lost (the worker kills what
 * that session started).
 */
export function classifyFailure(err: unknown): RunOutcome {
  if (isFleetError(err, "E_NOT_CONNECTED")) {
    return err.cause === undefined ? { status: "lost", error: "E_NOT_CONNECTED" } : { status: "undeliverable", error: "E_NOT_CONNECTED" };
  }
  if (isFleetError(err, "E_REMOTE")) {
    // A refusal (unknown_action, invalid_arguments, busy, duplicate_invocation) or another error code: the code is
    // an identifier the schema checked; the worker's message stays in the log.
    const code = (err as { remoteCode?: unknown }).remoteCode;
    return { status: "failed", error: typeof code === "string" ? code : "E_REMOTE" };
  }
  if (isFleetError(err, "E_TIMEOUT")) return { status: "timed_out", error: "E_TIMEOUT" };
  if (isFleetError(err, "E_CLOSED")) return { status: "cancelled", error: "E_CANCELLED" };
  if (isFleetError(err, "E_BAD_RESPONSE")) return { status: "failed", error: "E_BAD_RESPONSE" };
  const code = isFleetError(err) ? err.code : "E_INTERNAL";
  return { status: "failed", error: ERROR_CODE_PATTERN.test(code) ? code : "E_INTERNAL" };
}

/** Asks the worker to stop an invocation; its run then answers `cancelled`. Failing to ask is not an error here. */
export async function cancelInvocation(link: WorkerLink, worker: string, invocation: string): Promise<boolean> {
  if (!link.connected(worker)) return false;
  try {
    const answer = await link.request(worker, "actions.cancel", { invocation }, { timeoutMs: CANCEL_TIMEOUT_MS });
    return answer.found;
  } catch {
    return false;
  }
}
