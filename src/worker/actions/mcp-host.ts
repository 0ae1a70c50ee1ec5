import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "../../log.js";
import type { Arguments, CatalogEntry, RunStatus } from "../../protocol/actions.js";
import { McpServerProcess } from "./mcp-server-process.js";
import { readServersFile, type ServerConfig } from "./mcp-servers-file.js";
import { toolEntries, toolOutput } from "./mcp-tools.js";

export interface McpRunResult {
  status: RunStatus;
  /** The tool's text content (the invocation's stdout). */
  text: string;
  structured?: Record<string, unknown>;
  /** SERVER_DIED, SERVER_UNAVAILABLE, SERVER_START_FAILED, SERVER_STOPPED, TOOL_ERROR, RESULT_TOO_LARGE, MCP_ERROR, ... */
  error?: string;
}

export interface McpHostOptions {
  /** The servers file, /etc/mcp-fleet/mcp-servers.json by default. */
  file: string;
  log: Logger;
  /** Called when the entries changed (a server listed different tools). */
  onChange: () => void;
}

/** How long start() waits for the servers to list their tools; a slower one adds its tools when it has. */
const START_WAIT_MS = 10_000;

interface Hosted {
  config: ServerConfig;
  process: McpServerProcess;
  entries: CatalogEntry[];
  /** The tools the last listing left out, so each listing that repeats them does not log them again. */
  skippedKey: string;
}

/**
 * The MCP servers defined on this host, each tool offered as catalogue entry `<server>.<tool>`. The servers run as
 * the agent's own user, started on demand over stdio; what a tool may do is the server's business, and whether it
 * needs confirmation follows its readOnlyHint.
 */
export class McpHost {
  private readonly servers = new Map<string, Hosted>();
  private readonly log: Logger;

  constructor(private readonly options: McpHostOptions) {
    this.log = options.log.child({ part: "mcp-host" });
  }

  async start(): Promise<void> {
    const configs = await readServersFile(this.options.file, this.log);
    for (const [name, config] of configs) {
      const process = new McpServerProcess({ name, config, log: this.log, onTools: (tools) => this.listed(name, tools) });
      this.servers.set(name, { config, process, entries: [], skippedKey: "" });
    }
    if (this.servers.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.servers.values()].map((s) => s.process.warmUp())),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, START_WAIT_MS).unref())),
    ]);
    clearTimeout(timer);
  }

  entries(): CatalogEntry[] {
    return [...this.servers.values()].flatMap((s) => s.entries);
  }

  async run(action: string, args: Arguments, ctx: { signal: AbortSignal; timeoutMs: number }): Promise<McpRunResult> {
    const dot = action.indexOf(".");
    const hosted = dot > 0 ? this.servers.get(action.slice(0, dot)) : undefined;
    if (!hosted || !hosted.entries.some((e) => e.name === action)) return { status: "failed", text: "", error: "UNKNOWN_ACTION" };
    const end = await hosted.process.call(action.slice(dot + 1), args, ctx);
    switch (end.kind) {
      case "timed_out":
      case "cancelled":
        return { status: end.kind, text: "" };
      case "failed":
        return { status: "failed", text: "", error: end.error };
      case "result": {
        const out = toolOutput(end.result);
        return {
          status: out.isError ? "failed" : "succeeded",
          text: out.text,
          ...(out.structured ? { structured: out.structured } : {}),
          ...(out.isError ? { error: "TOOL_ERROR" } : {}),
        };
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.servers.values()].map((s) => s.process.stop()));
  }

  /** A server's tools, listed: its entries replaced, the change announced if there is one. */
  private listed(server: string, tools: Tool[]): void {
    const hosted = this.servers.get(server);
    if (!hosted) return;
    const { entries, skipped } = toolEntries(server, tools, hosted.config.timeout);
    const skippedKey = JSON.stringify(skipped);
    if (skippedKey !== hosted.skippedKey) {
      for (const s of skipped) this.log.warn({ server, tool: s.tool, err: s.reason }, "MCP tool left out of the catalogue");
      hosted.skippedKey = skippedKey;
    }
    if (JSON.stringify(entries) === JSON.stringify(hosted.entries)) return;
    hosted.entries = entries;
    this.log.info({ server, tools: entries.length }, "MCP server's tools in the catalogue");
    this.options.onChange();
  }
}
