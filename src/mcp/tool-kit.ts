import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { Principal } from "./principal.js";
import { ANSWER_MAX_CHARS, answerTooLarge, CURSOR_MAX_CHARS, fitRows } from "./answer-budget.js";

// What every tool family shares: how an answer is built and checked, the annotations, and the input fields.

export interface ToolOptions {
  /** How long a worker has to answer a status request. */
  requestTimeoutMs: number;
  /** At most this many status requests in flight at once for get_all_workers_status {fresh: true}. */
  freshConcurrency?: number;
  /** The wall clock confirmation tokens expire by (tests inject one). */
  now?: () => number;
  /** The certificate behind an HTTP session, recorded with the jobs it starts and the joins it decides. */
  principal?: Principal;
}

/** Said by every tool that returns worker fields: an assistant must not take a worker's claims for facts. */
export const PROVENANCE =
  "Observed: id (verified certificate), state, reasons, connection, ages, addresses. Reported by the worker, " +
  "unverified: host name, labels, version, platform, metrics, status.";

export const readOnly = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

/** The answer as structured content and the same JSON as text, or null if it would pass the budget. */
export function answerWithin<S extends z.ZodType>(schema: S, data: z.input<S>): CallToolResult | null {
  const structured = schema.parse(data) as Record<string, unknown>;
  const text = JSON.stringify(structured);
  return text.length <= ANSWER_MAX_CHARS ? { structuredContent: structured, content: [{ type: "text", text }] } : null;
}

/** The answer as structured content and the same JSON as text; never past the budget. */
export function answer<S extends z.ZodType>(tool: string, schema: S, data: z.input<S>): CallToolResult {
  const result = answerWithin(schema, data);
  if (!result) throw answerTooLarge(tool, JSON.stringify(schema.parse(data)).length);
  return result;
}

export interface PageParts<R, S extends z.ZodType> {
  /** The page's entries, most wanted first: if the budget cuts, it cuts from the end. */
  rows: R[];
  /** Whether entries follow these beyond the page. */
  more: boolean;
  /** What of a row the answer holds. */
  shown: (row: R) => unknown;
  /** The whole answer around `rows`. */
  build: (rows: R[], nextCursor: string | null) => z.input<S>;
  /** The cursor that continues after `row`. */
  cursorAfter: (row: R) => string;
}

/**
 * A page as an answer: as many of its rows as fit the budget, and a cursor that continues after the last one kept
 * whenever rows were cut or more follow. The page is measured row by row, so the answer is built once.
 */
export function pageAnswer<R, S extends z.ZodType>(tool: string, schema: S, p: PageParts<R, S>): CallToolResult {
  const empty = JSON.stringify(schema.parse(p.build([], "x".repeat(CURSOR_MAX_CHARS)))).length;
  let { rows, cut } = fitRows(p.rows, empty, ANSWER_MAX_CHARS, p.shown);
  for (;;) {
    const last = rows.at(-1);
    const nextCursor = last !== undefined && (cut || p.more) ? p.cursorAfter(last) : null;
    const result = answerWithin(schema, p.build(rows, nextCursor));
    if (result) return result;
    // Measured rows fit by construction; this only guards against a row whose JSON changed in parsing.
    if (rows.length <= 1) return answer(tool, schema, p.build(rows, nextCursor));
    rows = rows.slice(0, -1);
    cut = true;
  }
}

/** Whether the client can put a question to its user (form elicitation); a confirmation then asks instead of issuing a token. */
export function canAskUser(server: McpServer): boolean {
  return server.server.getClientCapabilities()?.elicitation?.form !== undefined;
}

export function toolError(message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: message }] };
}

// Input fields, with messages written for the model that will read them when it gets an argument wrong.
export const stateFilter = z
  .enum(HEALTH_STATES, { error: `state must be one of ${HEALTH_STATES.join(", ")}` })
  .optional()
  .describe("only workers in this state");
export const labelFilter = z
  .string()
  .min(1)
  .max(320)
  .optional()
  .describe('only workers with this label: "key=value", or "key" for any value');
export const workerId = z
  .string()
  .min(1, "worker_id must not be empty")
  .max(63, "worker_id is at most 63 characters")
  .describe("a worker id from list_workers");
export const cursorArg = z.string().max(CURSOR_MAX_CHARS).optional().describe("nextCursor of the previous page");

/** The largest page any list tool returns; the answer budget may end a page sooner. */
export const MAX_LIMIT = 500;

export const limitArg = (what: string) =>
  z
    .number({ error: "limit must be a number" })
    .int("limit must be a whole number")
    .min(1, `limit must be between 1 and ${MAX_LIMIT}`)
    .max(MAX_LIMIT, `limit must be between 1 and ${MAX_LIMIT}`)
    .optional()
    .describe(what);
