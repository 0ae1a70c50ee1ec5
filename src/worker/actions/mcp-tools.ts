import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { ACTION_NAME_PATTERN, CatalogEntry, MAX_CATALOG_ENTRIES, MAX_KEPT_OUTPUT_BYTES } from "../../protocol/actions.js";
import { toDisplay } from "../../protocol/text.js";

/*
 * What an MCP server says, made to fit the catalogue and the run result. The server is a program on the host, but
 * what it says about its tools is still text from a program: held to the same classes and bounds as any entry.
 */

export const MAX_INPUT_SCHEMA_CHARS = 8192;
export const MCP_TOOL_CONCURRENCY = 4;
const MAX_DESCRIPTION = 500;

export type ToolEntry = { ok: true; entry: CatalogEntry } | { ok: false; tool: string; reason: string };

/** One tool as catalogue entry `<server>.<tool>`, or why it is left out. */
export function toolEntry(server: string, tool: Tool, timeoutMs: number): ToolEntry {
  const name = `${server}.${tool.name}`;
  const shown = tool.name.slice(0, 80);
  if (!ACTION_NAME_PATTERN.test(name)) return { ok: false, tool: shown, reason: "tool name must be 1–64 of A-Z a-z 0-9 _ -" };
  if (tool.execution?.taskSupport === "required") return { ok: false, tool: shown, reason: "tool requires task-based execution" };
  const schemaChars = JSON.stringify(tool.inputSchema).length;
  if (schemaChars > MAX_INPUT_SCHEMA_CHARS) {
    return { ok: false, tool: shown, reason: `input schema of ${schemaChars} characters, over ${MAX_INPUT_SCHEMA_CHARS}` };
  }
  const parsed = CatalogEntry.safeParse({
    name,
    kind: "mcp",
    description: toDisplay(tool.description ?? tool.title ?? tool.annotations?.title ?? "", MAX_DESCRIPTION),
    // A tool that does not say it only reads is taken to change something, and so needs confirmation.
    destructive: tool.annotations?.readOnlyHint !== true,
    inputSchema: tool.inputSchema,
    timeoutMs,
    concurrency: MCP_TOOL_CONCURRENCY,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, tool: shown, reason: `${issue?.path.join(".") ?? "entry"}: ${issue?.message ?? "invalid"}` };
  }
  return { ok: true, entry: parsed.data };
}

/** A server's entries in name order, at most a catalogue's worth; the tools left out come back with reasons. */
export function toolEntries(server: string, tools: readonly Tool[], timeoutMs: number): { entries: CatalogEntry[]; skipped: Array<{ tool: string; reason: string }> } {
  const entries: CatalogEntry[] = [];
  const skipped: Array<{ tool: string; reason: string }> = [];
  const seen = new Set<string>();
  for (const tool of tools) {
    const made = toolEntry(server, tool, timeoutMs);
    if (!made.ok) skipped.push({ tool: made.tool, reason: made.reason });
    else if (seen.has(made.entry.name)) skipped.push({ tool: tool.name, reason: "listed twice" });
    else {
      seen.add(made.entry.name);
      entries.push(made.entry);
    }
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries.splice(MAX_CATALOG_ENTRIES)) skipped.push({ tool: e.name, reason: `more than ${MAX_CATALOG_ENTRIES} tools` });
  return { entries, skipped };
}

export interface ToolOutput {
  text: string;
  structured?: Record<string, unknown>;
  isError: boolean;
}

/**
 * A tool's answer as run output: its text items joined (other kinds of content named, not carried), cut to what
 * an invocation may keep; its structuredContent as it is (the service drops it if it will not fit a frame).
 */
export function toolOutput(result: CallToolResult): ToolOutput {
  const parts: string[] = [];
  let bytes = 0;
  for (const item of result.content ?? []) {
    const piece = item.type === "text" ? item.text : `[${item.type} content not carried]`;
    parts.push(piece);
    bytes += Buffer.byteLength(piece) + 1;
    if (bytes > MAX_KEPT_OUTPUT_BYTES) break;
  }
  const structured = result.structuredContent;
  return {
    text: cutUtf8(parts.join("\n"), MAX_KEPT_OUTPUT_BYTES),
    ...(structured && typeof structured === "object" && !Array.isArray(structured) ? { structured } : {}),
    isError: result.isError === true,
  };
}

/** At most `max` bytes of UTF-8, never splitting a character. */
export function cutUtf8(text: string, max: number): string {
  if (text.length <= max / 4 || Buffer.byteLength(text) <= max) return text;
  const buf = Buffer.from(text, "utf8").subarray(0, max);
  let end = buf.length;
  // Back off over a character cut in two: continuation bytes are 10xxxxxx.
  let back = 0;
  while (back < 4 && end - back > 0 && (buf[end - back - 1]! & 0xc0) === 0x80) back++;
  if (end - back > 0) {
    const lead = buf[end - back - 1]!;
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (need > back + 1) end = end - back - 1;
  }
  return buf.subarray(0, end).toString("utf8");
}
