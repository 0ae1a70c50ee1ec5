import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { Approver, JoinRequestView, JoinService } from "../enroll/api.js";
import { errorMessage, isFleetError } from "../errors.js";
import type { Manager } from "../manager/manager.js";
import { ANSWER_MAX_CHARS, CAPS, clip, fitRows } from "./answer-budget.js";
import { CONFIRMATION_TTL_MS, type Confirmations, joinBinding, type JoinDecision, type Refusal, STALE_TOKEN } from "./confirmations.js";
import type { Principal } from "./principal.js";
import { whole } from "./schemas.js";
import { answer, canAskUser, readOnly, toolError } from "./tool-kit.js";

// Hosts asking to join the fleet, and the operator's decisions on them, through the manager's JoinService. A
// decision is confirmed as a destructive action is (action-tools.ts): approving lets a host into the fleet.

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const JoinRequestOut = z.object({
  requestId: z.string(),
  requestedId: z.string(),
  hostname: z.string(),
  address: z.string().nullable(),
  keyFingerprint: z.string(),
  tokenId: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  expiresAt: z.string(),
  ageSeconds: whole,
});
type JoinRequestOut = z.input<typeof JoinRequestOut>;

export const ListJoinRequestsOutput = z.object({
  requests: z.array(JoinRequestOut),
  count: whole.describe("all pending; more than shown if cut"),
  enrollment: z.enum(["enabled", "disabled"]),
});

const Confirmation = z.object({ token: z.string(), expiresAt: z.string(), request: z.unknown().describe("as in list_join_requests") });

// deny_join declares its confirmation by reference to approve_join's: tools/list has room for few words.
export const ApproveJoinOutput = z.object({
  approved: z.object({ workerId: z.string(), serialNumber: z.string().optional(), notAfter: z.string().optional() }).optional(),
  confirmation: Confirmation.optional().describe("nothing decided: call again with confirm=token"),
});

export const DenyJoinOutput = z.object({
  denied: z.object({ workerId: z.string() }).optional(),
  confirmation: z.unknown().optional().describe("as in approve_join"),
});

const requestIdArg = z.string().min(1).max(16);
const confirmArg = z.string().max(64).optional();

const destructive = { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false };

export interface JoinToolDeps {
  confirmations: Confirmations;
  principal?: Principal;
}

export function registerJoinTools(server: McpServer, manager: Manager, deps: JoinToolDeps): void {
  server.registerTool(
    "list_join_requests",
    {
      title: "Join requests",
      description:
        "Hosts waiting to join (at most 100, each up to 1 h), oldest first, in one answer (no paging); approve_join " +
        "or deny_join decides. Reported by the joining host (its claims): requestedId (its id if approved), hostname. Observed: address, keyFingerprint " +
        "(of its CSR), tokenId (valid token shown, or null). labels: its token's.",
      outputSchema: ListJoinRequestsOutput.shape,
      annotations: readOnly,
    },
    async () => {
      const joins = manager.joins;
      const requests = joins.listRequests().map(requestOut);
      const data = (rows: JoinRequestOut[]) => ({ requests: rows, count: requests.length, enrollment: joins.enabled ? ("enabled" as const) : ("disabled" as const) });
      const { rows } = fitRows(requests, JSON.stringify(ListJoinRequestsOutput.parse(data([]))).length, ANSWER_MAX_CHARS);
      return answer("list_join_requests", ListJoinRequestsOutput, data(rows));
    },
  );
  server.registerTool(
    "approve_join",
    {
      title: "Approve a join request",
      description:
        "Lets a host from list_join_requests in, as its requestedId with its token's labels. Confirmed first: the " +
        "user is asked if the client can, else the answer is a token, and nothing is decided until a call with " +
        "confirm=token. Logged with this client's name.",
      inputSchema: { request_id: requestIdArg.describe("from list_join_requests"), confirm: confirmArg.describe("token from a confirmation answer") },
      outputSchema: ApproveJoinOutput.shape,
      annotations: destructive,
    },
    (input, extra) => decide(server, manager, deps, "approve", input, extra),
  );
  server.registerTool(
    "deny_join",
    {
      title: "Deny a join request",
      description: "Refuses a host from list_join_requests (its key stays refused while the request would have lasted). Confirmed as approve_join is.",
      inputSchema: { request_id: requestIdArg, confirm: confirmArg },
      outputSchema: DenyJoinOutput.shape,
      annotations: destructive,
    },
    (input, extra) => decide(server, manager, deps, "deny", input, extra),
  );
}

function requestOut(r: JoinRequestView): JoinRequestOut {
  return {
    requestId: r.requestId,
    requestedId: r.requestedId,
    hostname: clip(r.hostname, CAPS.hostname),
    address: r.address,
    keyFingerprint: r.keyFingerprint,
    tokenId: r.tokenId,
    labels: r.labels,
    expiresAt: r.expiresAt,
    ageSeconds: Math.max(0, Math.floor(r.ageMs / 1000)),
  };
}

const TOOL: Record<JoinDecision, "approve_join" | "deny_join"> = { approve: "approve_join", deny: "deny_join" };

const REFUSALS: Record<Exclude<Refusal, "unknown">, string> = {
  ...STALE_TOKEN,
  mismatched: "this token confirms another decision (the other of approve and deny, or another request)",
};

/** The decision on one request, once confirmed; otherwise the refusal, the user's decline, or the request and a token. */
async function decide(
  server: McpServer,
  manager: Manager,
  deps: JoinToolDeps,
  decision: JoinDecision,
  input: { request_id: string; confirm?: string | undefined },
  extra: Extra,
): Promise<CallToolResult> {
  const joins = manager.joins;
  const binding = joinBinding(decision, input.request_id);
  // The token names the request by id, so it is redeemed before the request is looked up: a used token says so
  // even once its request is decided, and a request gone since is the service's to report.
  if (input.confirm !== undefined) {
    const refusal = deps.confirmations.redeem(input.confirm, binding);
    if (refusal === null) return carryOut(server, joins, decision, input.request_id, deps.principal);
    if (refusal !== "unknown") {
      return toolError(`E_CONFIRMATION: ${REFUSALS[refusal]}; nothing was decided. Call ${TOOL[decision]} without confirm for a new token.`);
    }
  }
  const request = joins.listRequests().find((r) => r.requestId === input.request_id);
  if (!request) return toolError(unknownRequest(joins, input.request_id));
  if (canAskUser(server)) {
    const declined = await ask(server, decision, request, extra);
    return declined ?? carryOut(server, joins, decision, request.requestId, deps.principal);
  }
  const issued = deps.confirmations.issue(binding);
  const confirmation = Confirmation.parse({ token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString(), request: JoinRequestOut.parse(requestOut(request)) });
  return decision === "approve"
    ? answer("approve_join", ApproveJoinOutput, { confirmation })
    : answer("deny_join", DenyJoinOutput, { confirmation });
}

function unknownRequest(joins: JoinService, requestId: string): string {
  const id = JSON.stringify(clip(requestId, 16));
  return joins.enabled
    ? `E_UNKNOWN_REQUEST: no pending join request ${id}; list_join_requests shows the pending ones (a request is gone once decided, or after 1 h)`
    : `E_UNKNOWN_REQUEST: no join request ${id}: this manager does not enroll hosts (it has no CA key)`;
}

async function carryOut(server: McpServer, joins: JoinService, decision: JoinDecision, requestId: string, principal: Principal | undefined): Promise<CallToolResult> {
  const by = approverOf(server, principal);
  try {
    if (decision === "approve") {
      const r = await joins.approve(requestId, by);
      const approved = { workerId: r.workerId, ...(r.serialNumber !== undefined ? { serialNumber: r.serialNumber } : {}), ...(r.notAfter !== undefined ? { notAfter: r.notAfter } : {}) };
      return answer("approve_join", ApproveJoinOutput, { approved });
    }
    const r = await joins.deny(requestId, by);
    return answer("deny_join", DenyJoinOutput, { denied: { workerId: r.workerId } });
  } catch (err) {
    const code = isFleetError(err) ? err.code : "E_JOIN";
    return toolError(`${code}: ${clip(errorMessage(err), CAPS.error)}`);
  }
}

/** The MCP client as its initialize named it, and over HTTP the operator's certificate: the service logs each decision with them. */
function approverOf(server: McpServer, principal: Principal | undefined): Approver {
  const v = server.server.getClientVersion();
  const by: Approver = { via: "mcp", name: clip(v?.name ?? "unknown", CAPS.text) };
  if (v?.version !== undefined) by.version = clip(v.version, CAPS.text);
  if (principal) by.operator = principal.id;
  return by;
}

/** The question put to the user: the decision, and everything known of the request, the host's claims quoted as such. */
export function joinQuestion(decision: JoinDecision, r: JoinRequestView): string {
  const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`);
  const shownLabels = labels.length === 0 ? "none" : clip(labels.join(", "), 1000);
  const token = r.tokenId === null ? "no token" : `token ${r.tokenId}`;
  const consequence = decision === "approve" ? `It gets a worker certificate as "${r.requestedId}".` : "It is refused, and its key stays refused while the request would have lasted.";
  return (
    `${decision === "approve" ? "Approve" : "Deny"} join request ${r.requestId}? The host says it is ${JSON.stringify(clip(r.hostname, CAPS.hostname))} ` +
    `and asks to join as "${r.requestedId}". Seen by the manager: address ${r.address ?? "unknown"}, key fingerprint ` +
    `${r.keyFingerprint}, ${token}; labels ${shownLabels}. ${consequence}`
  );
}

/** Null if the user accepted; else the answer that says nothing was decided. */
async function ask(server: McpServer, decision: JoinDecision, r: JoinRequestView, extra: Extra): Promise<CallToolResult | null> {
  try {
    const result = await server.server.elicitInput(
      {
        mode: "form",
        message: joinQuestion(decision, r),
        requestedSchema: { type: "object", properties: { confirm: { type: "boolean", title: decision === "approve" ? "Approve it" : "Deny it", default: true } } },
      },
      { signal: extra.signal, timeout: CONFIRMATION_TTL_MS },
    );
    if (result.action === "accept" && result.content?.confirm !== false) return null;
    return toolError(`E_DECLINED: the user ${result.action === "cancel" ? "cancelled" : "declined"} to ${decision} join request ${r.requestId}; nothing was decided.`);
  } catch (err) {
    return toolError(`E_CONFIRMATION: the user could not be asked (${clip(errorMessage(err), CAPS.error)}); nothing was decided.`);
  }
}
