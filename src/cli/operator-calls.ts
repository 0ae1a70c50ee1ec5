import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { CallToolResultSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { z } from "zod";
import { ask, OperatorExit, type ConnectionSettings } from "./operator-connection.js";
import { EXIT } from "./operator-views.js";

// The operator commands call the manager's MCP tools and read their structured results: the same answers an
// assistant gets, parsed by the same output schemas, so there is no second API to keep in step.

/** Tool errors that mean the command asked for something that is not there or not allowed: bad usage, exit 64. */
const USAGE_CODES = /^(E_INVALID_ARGUMENT|E_INVALID_LIMIT|E_UNKNOWN_WORKER|E_UNKNOWN_ACTION|E_UNKNOWN_JOB|E_NO_TARGETS|E_FORBIDDEN|Unknown worker_id|MCP error -32602)/;

export interface ToolAnswer<T> {
  /** The structured content as the manager sent it: what `--json` prints. */
  raw: Record<string, unknown>;
  /** The same, parsed by the tool's output schema. */
  data: T;
}

/** The error text of a tool's error result, and the exit code it means. */
export function toolFailure(tool: string, text: string): OperatorExit {
  return new OperatorExit(USAGE_CODES.test(text) ? EXIT.usage : EXIT.failed, `${tool}: ${text}`);
}

export async function callTool<S extends z.ZodType>(
  client: Client,
  s: ConnectionSettings,
  tool: string,
  args: Record<string, unknown>,
  schema: S,
  options: RequestOptions & { wait?: number } = {},
): Promise<ToolAnswer<z.infer<S>>> {
  const result: CallToolResult = await ask(
    s,
    `${tool} did not answer`,
    async () => (await client.callTool({ name: tool, arguments: args }, CallToolResultSchema, { timeout: options.wait ?? s.timeout, ...options })) as CallToolResult,
    // The SDK's own timeout answers first (as an McpError); this only bounds a stuck transport.
    (options.wait ?? s.timeout) + 1000,
  );
  if (result.isError) {
    const text = result.content.map((c) => (c.type === "text" ? c.text : "")).join(" ").trim();
    throw toolFailure(tool, text || "failed");
  }
  const raw = (result.structuredContent ?? {}) as Record<string, unknown>;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new OperatorExit(EXIT.failed, `${tool}: the manager's answer is not what this version expects (${parsed.error.issues[0]?.message ?? "invalid"})`);
  return { raw, data: parsed.data };
}

/** Every page of a list tool, following nextCursor (bounded: a manager that never ends its list is cut off). */
export async function allPages<S extends z.ZodType<{ nextCursor: string | null }>>(
  client: Client,
  s: ConnectionSettings,
  tool: string,
  args: Record<string, unknown>,
  schema: S,
  maxPages = 1000,
): Promise<Array<ToolAnswer<z.infer<S>>>> {
  const pages: Array<ToolAnswer<z.infer<S>>> = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const page = await callTool(client, s, tool, cursor === undefined ? args : { ...args, cursor }, schema);
    pages.push(page);
    const next = (page.data as { nextCursor: string | null }).nextCursor;
    if (next === null) break;
    cursor = next;
  }
  return pages;
}
