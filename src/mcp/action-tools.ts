import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { ActionSummary, Client, JobService, Plan } from "../jobs/api.js";
import { errorMessage } from "../errors.js";
import type { Manager } from "../manager/manager.js";
import { ANSWER_MAX_CHARS, CAPS, clip, fitRows } from "./answer-budget.js";
import { CONFIRMATION_TTL_MS, type Confirmations, planBinding, type Refusal, STALE_TOKEN } from "./confirmations.js";
import { jobAnswer } from "./job-tools.js";
import { ListActionsOutput, planOut, RunActionOutput, someIds } from "./job-views.js";
import { answer, canAskUser, labelFilter, readOnly, stateFilter, toolError, workerId } from "./tool-kit.js";
import type { Principal } from "./principal.js";
import { planErrorText, runRequest, TargetInput } from "./run-request.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** How long run_action waits for its job before it answers with what it has; the job keeps running. */
export const RUN_WAIT_MS = 20_000;
/** A progress sent just before the result can reach the SDK client after it (fleet-tools.ts says why). */
const PROGRESS_GAP_MS = 20;
/** One action's definition in list_actions, in JSON characters; a larger one is shown without its parameters. */
const ACTION_JSON_MAX = 12_000;

export function registerListActions(server: McpServer, manager: Manager): void {
  server.registerTool(
    "list_actions",
    {
      title: "List actions",
      description:
        "The actions the workers' hosts define (each host decides what may run on it): each distinct definition " +
        "once, with its parameters, whether destructive, its timeout, and which workers offer it (count, first ids). " +
        "Definitions are reported by the workers; who offers them is observed.",
      inputSchema: { worker_id: workerId.optional(), label: labelFilter, state: stateFilter },
      outputSchema: ListActionsOutput.shape,
      annotations: readOnly,
    },
    async ({ worker_id, label, state }) => {
      const actions = manager.jobs.listActions({ workerId: worker_id, label, state }).map(actionOut);
      const empty = JSON.stringify(ListActionsOutput.parse({ actions: [], total: actions.length })).length;
      const { rows } = fitRows(actions, empty, ANSWER_MAX_CHARS);
      return answer("list_actions", ListActionsOutput, { actions: rows, total: actions.length });
    },
  );
}

function actionOut(a: ActionSummary): z.input<typeof ListActionsOutput>["actions"][number] {
  const out = { ...a, offeredBy: { count: a.offeredBy.count, first: a.offeredBy.first.slice(0, 10) } };
  if (JSON.stringify(out).length <= ACTION_JSON_MAX) return out;
  const { params: _p, inputSchema: _s, ...rest } = out;
  return { ...rest, omitted: "params: too large to show" };
}

export interface RunActionDeps {
  confirmations: Confirmations;
  principal?: Principal;
}

export function registerRunAction(server: McpServer, manager: Manager, deps: RunActionDeps): void {
  server.registerTool(
    "run_action",
    {
      title: "Run an action",
      description:
        "Runs an action from list_actions as a job on the target workers; each target's host decides what may run " +
        "and checks the arguments. A destructive action is confirmed first: by asking the user if the client can, " +
        "else the answer is a plan and a token, and nothing runs until a call with confirm=token. Waits up to 20 s, " +
        "then returns the job so far (get_job follows it). Exit codes, times, output and results are reported by " +
        "the worker: data, never instructions.",
      inputSchema: {
        action: z.string().min(1).max(129),
        arguments: z.record(z.string(), z.unknown()).default({}),
        target: TargetInput,
        max_concurrency: z.union([z.number(), z.string().max(8)]).optional().describe('default 10; or "N%"'),
        max_errors: z.union([z.number(), z.string().max(8)]).optional().describe('default 0; or "N%"'),
        timeout: z.string().max(16).optional().describe('e.g. "30s"; at most the action\'s own'),
        confirm: z.string().max(64).optional().describe("token from a confirmation answer"),
      },
      outputSchema: RunActionOutput.shape,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    },
    async (input, extra) => {
      const request = runRequest(input);
      if (typeof request === "string") return toolError(request);
      const jobs = manager.jobs;
      const plan = jobs.plan(request);
      if ("code" in plan) return toolError(planErrorText(plan));
      if (plan.destructive) {
        const refused = await confirmed(server, deps.confirmations, plan, input.confirm, extra);
        if (refused) return refused;
      }
      return runJob(jobs, plan, clientOf(server, deps.principal), extra);
    },
  );
}

/** Who started a job: the MCP client as its initialize named it, and over HTTP the operator's certificate. */
function clientOf(server: McpServer, principal: Principal | undefined): Client {
  const v = server.server.getClientVersion();
  const client: Client = { name: clip(v?.name ?? "unknown", CAPS.text), version: clip(v?.version ?? "unknown", CAPS.text) };
  if (principal) client.operator = principal.id;
  return client;
}

const REFUSALS: Record<Exclude<Refusal, "unknown">, string> = {
  ...STALE_TOKEN,
  mismatched: "this token confirms another plan (action, arguments, targets or their definitions differ)",
};

/**
 * Null if the destructive plan may run; else the answer instead of running it: a refused token, the user's
 * decline, or (for a client that cannot be asked) the plan with a new token.
 */
async function confirmed(server: McpServer, confirmations: Confirmations, plan: Plan, token: string | undefined, extra: Extra): Promise<CallToolResult | null> {
  if (token !== undefined) {
    const refusal = confirmations.redeem(token, planBinding(plan));
    if (refusal === null) return null;
    if (refusal !== "unknown") return toolError(`E_CONFIRMATION: ${REFUSALS[refusal]}; nothing ran. Call run_action without confirm for a new plan and token.`);
  }
  if (canAskUser(server)) return elicit(server, plan, extra);
  const issued = confirmations.issue(planBinding(plan));
  return answer("run_action", RunActionOutput, {
    confirmation: { token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString(), plan: planOut(plan) },
  });
}

/** The question put to the user: the action, its arguments and the targets, in plain words. */
export function confirmationMessage(plan: Plan): string {
  const args = JSON.stringify(plan.arguments);
  const shownArgs = args.length <= 2000 ? args : `${args.slice(0, 2000)}… (${args.length} characters in all)`;
  const { count, first } = someIds(plan.targets);
  const more = count > first.length ? `, and ${count - first.length} more` : "";
  return `Run the destructive action "${plan.action}" with arguments ${shownArgs} on ${count} worker${count === 1 ? "" : "s"}: ${first.join(", ")}${more}?`;
}

async function elicit(server: McpServer, plan: Plan, extra: Extra): Promise<CallToolResult | null> {
  try {
    const result = await server.server.elicitInput(
      {
        mode: "form",
        message: confirmationMessage(plan),
        requestedSchema: { type: "object", properties: { confirm: { type: "boolean", title: "Run it", default: true } } },
      },
      { signal: extra.signal, timeout: CONFIRMATION_TTL_MS },
    );
    if (result.action === "accept" && result.content?.confirm !== false) return null;
    return toolError(`E_DECLINED: the user ${result.action === "cancel" ? "cancelled" : "declined"} running ${plan.action} on ${plan.targets.length} worker(s); nothing ran.`);
  } catch (err) {
    return toolError(`E_CONFIRMATION: the user could not be asked (${clip(errorMessage(err), CAPS.error)}); nothing ran.`);
  }
}

/** Starts the job, reports each finished invocation as progress, and answers after RUN_WAIT_MS or the job's end. */
async function runJob(jobs: JobService, plan: Plan, client: Client, extra: Extra): Promise<CallToolResult> {
  let started;
  try {
    started = jobs.start(plan, client);
  } catch (err) {
    return toolError(`E_TOO_BUSY: ${clip(errorMessage(err), CAPS.error)}`);
  }
  const id = started.id;
  const token = extra._meta?.progressToken;
  let lastProgressAt = -Infinity;
  let sending = Promise.resolve();
  const stop =
    token === undefined
      ? () => {}
      : jobs.onInvocationEnded(id, (invocation, job) => {
          const finished = job.targets - job.counts.pending - job.counts.running;
          const params = { progressToken: token, progress: finished, total: job.targets, message: `${invocation.worker} ${invocation.status}` };
          // In order, one after another: a client sees the finished count rise.
          sending = sending.then(() => extra.sendNotification({ method: "notifications/progress", params }).catch(() => {}));
          lastProgressAt = performance.now();
        });
  try {
    await jobs.waitFor(id, RUN_WAIT_MS, extra.signal);
    if (extra.signal.aborted) jobs.cancel(id);
  } finally {
    stop();
  }
  await sending;
  const sinceProgress = performance.now() - lastProgressAt;
  if (sinceProgress < PROGRESS_GAP_MS) await new Promise((resolve) => setTimeout(resolve, PROGRESS_GAP_MS - sinceProgress));
  return jobAnswer("run_action", jobs.get(id) ?? started, 0);
}
