import type { Readable } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CallToolResultSchema, McpError, ToolListChangedNotificationSchema, type CallToolResult, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { errorMessage } from "../../errors.js";
import type { Logger } from "../../log.js";
import { VERSION } from "../../version.js";
import { logServerStderr } from "./mcp-server-stderr.js";
import type { ServerConfig } from "./mcp-servers-file.js";

/** Starts a minute beyond which a server is left down: a server that dies at once must not be a fork loop. */
export const STARTS_PER_MINUTE = 5;
const START_TIMEOUT_MS = 30_000;
const LIST_PAGE_TIMEOUT_MS = 30_000;
const MAX_LIST_PAGES = 20;
const MAX_LISTED_TOOLS = 1024;
/** One message from the server at most; a longer one closes the connection (RESULT_TOO_LARGE). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const RELIST_DEBOUNCE_MS = 200;
const RETRY_FIRST_MS = 30_000;
const RETRY_MAX_MS = 10 * 60_000;

/** Why a call could not reach the server, as the run result's error. */
export class ServerError extends Error {
  constructor(
    readonly code: "SERVER_UNAVAILABLE" | "SERVER_START_FAILED",
    message: string,
  ) {
    super(message);
  }
}

export type CallEnd =
  | { kind: "result"; result: CallToolResult }
  | { kind: "timed_out" }
  | { kind: "cancelled" }
  | { kind: "failed"; error: string };

/** One run of the server's process and the SDK client speaking to it. */
class Connection {
  /** It has gone (exited, or closed by us). */
  closed = false;
  /** We asked it to go, so its going is no death. */
  retiring = false;
  /** It sent a message over MAX_MESSAGE_BYTES, which closes the transport. */
  overflow = false;
  /** Known once the process has spawned; kept after it has gone, for the log. */
  pid: number | null = null;
  readonly gone: Promise<void>;
  markGone!: () => void;

  constructor(
    readonly client: Client,
    readonly transport: StdioClientTransport,
  ) {
    this.gone = new Promise((resolve) => (this.markGone = resolve));
  }
}

export interface ServerProcessOptions {
  name: string;
  config: ServerConfig;
  log: Logger;
  /** The server's tools, after each listing (every start, and each tools/list_changed). */
  onTools: (tools: Tool[]) => void;
}

/**
 * One hosted MCP server's lifecycle: started when a call needs it (and once at the agent's start, to list its
 * tools), stopped after idleTimeout without a call, started again when it died, with at most STARTS_PER_MINUTE
 * starts a minute. Calls share one connection; each call has its own deadline and cancellation.
 */
export class McpServerProcess {
  private conn: Connection | null = null;
  private launching: Connection | null = null;
  private starting: Promise<Connection> | null = null;
  private startTimes: number[] = [];
  private active = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private relistTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_FIRST_MS;
  private listed = false;
  private stopped = false;
  private stormLogged = false;
  private readonly closing = new Set<Promise<void>>();
  private readonly log: Logger;

  constructor(private readonly options: ServerProcessOptions) {
    this.log = options.log;
  }

  get name(): string {
    return this.options.name;
  }

  /** The process id while it runs (tests use it to see it go). */
  get pid(): number | null {
    return this.conn?.pid ?? null;
  }

  /**
   * Starts the server to learn its tools, and leaves it to idle. One that cannot start now is tried again later
   * (backing off to every RETRY_MAX_MS), since until it has listed its tools it offers nothing to call.
   */
  async warmUp(): Promise<void> {
    try {
      await this.connection();
    } catch (err) {
      if (this.stopped || this.listed) return;
      this.log.warn({ server: this.name, err: errorMessage(err), retryInMs: this.retryMs }, "MCP server did not start; trying again later");
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        void this.warmUp();
      }, this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    }
  }

  async call(tool: string, args: Record<string, unknown>, ctx: { signal: AbortSignal; timeoutMs: number }): Promise<CallEnd> {
    if (ctx.signal.aborted) return { kind: "cancelled" };
    this.active++;
    this.clearIdle();
    let why: "timeout" | "cancel" | null = null;
    const controller = new AbortController();
    const end = (reason: "timeout" | "cancel") => {
      if (why) return;
      why = reason;
      controller.abort(new Error(reason === "timeout" ? "timed out" : "cancelled"));
    };
    const timer = setTimeout(() => end("timeout"), ctx.timeoutMs);
    const onAbort = () => end("cancel");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    const ended = new Promise<never>((_, reject) => controller.signal.addEventListener("abort", () => reject(controller.signal.reason as Error), { once: true }));
    ended.catch(() => {});
    let conn: Connection | null = null;
    try {
      // Starting counts against the call's time: the caller's deadline covers all of it.
      conn = await Promise.race([this.connection(), ended]);
      const result = await conn.client.callTool({ name: tool, arguments: args }, CallToolResultSchema, {
        signal: controller.signal,
        // Our own timer ends the call first; the SDK's is only a backstop.
        timeout: ctx.timeoutMs + 10_000,
      });
      return { kind: "result", result: result as CallToolResult };
    } catch (err) {
      if (why === "timeout") {
        // A server that does not answer may not answer the next call either: the next call gets a fresh one.
        if (conn) this.retire(conn, "a call timed out");
        return { kind: "timed_out" };
      }
      if (why === "cancel") return { kind: "cancelled" };
      if (err instanceof ServerError) return { kind: "failed", error: err.code };
      if (conn?.overflow) return { kind: "failed", error: "RESULT_TOO_LARGE" };
      if (conn?.retiring) return { kind: "failed", error: "SERVER_STOPPED" };
      if (conn?.closed) return { kind: "failed", error: "SERVER_DIED" };
      this.log.debug({ server: this.name, tool, err: errorMessage(err) }, "MCP tool call failed");
      return { kind: "failed", error: err instanceof McpError ? "MCP_ERROR" : "BAD_TOOL_RESULT" };
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
      this.active--;
      this.scheduleIdle();
    }
  }

  /** Stops the process (if running) and anything starting, and waits until they have gone. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.clearIdle();
    for (const t of [this.relistTimer, this.retryTimer]) if (t) clearTimeout(t);
    if (this.launching) this.retire(this.launching, "the agent is stopping");
    await this.starting?.catch(() => {});
    if (this.conn) this.retire(this.conn, "the agent is stopping");
    await Promise.all([...this.closing]);
  }

  private connection(): Promise<Connection> {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    this.starting ??= this.launch().finally(() => (this.starting = null));
    return this.starting;
  }

  private async launch(): Promise<Connection> {
    if (this.stopped) throw new ServerError("SERVER_UNAVAILABLE", "the agent is stopping");
    const now = Date.now();
    this.startTimes = this.startTimes.filter((t) => now - t < 60_000);
    if (this.startTimes.length >= STARTS_PER_MINUTE) {
      if (!this.stormLogged) {
        this.stormLogged = true;
        this.log.warn({ server: this.name, starts: this.startTimes.length }, "MCP server restarting too often; leaving it down for now");
      }
      throw new ServerError("SERVER_UNAVAILABLE", `started ${STARTS_PER_MINUTE} times in the last minute`);
    }
    this.stormLogged = false;
    this.startTimes.push(now);

    const { config } = this.options;
    const transport = new StdioClientTransport({
      command: config.command,
      args: config.args,
      env: config.env,
      ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
      stderr: "pipe",
      maxBufferSize: MAX_MESSAGE_BYTES,
    });
    if (transport.stderr) logServerStderr(transport.stderr as Readable, this.log, this.name);
    const client = new Client({ name: "mcp-fleet-worker", version: VERSION }, { capabilities: {} });
    const conn = new Connection(client, transport);
    client.onclose = () => this.gone(conn);
    client.onerror = (err) => {
      if (/ReadBuffer exceeded/.test(err.message)) conn.overflow = true;
      this.log.debug({ server: this.name, err: err.message.slice(0, 300) }, "MCP server connection error");
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.scheduleRelist(conn));
    this.launching = conn;
    let tools: Tool[];
    try {
      await client.connect(transport, { timeout: START_TIMEOUT_MS });
      conn.pid = transport.pid;
      tools = await this.listTools(conn);
    } catch (err) {
      this.retire(conn, "it did not start");
      throw new ServerError("SERVER_START_FAILED", errorMessage(err));
    } finally {
      this.launching = null;
    }
    if (this.stopped || conn.closed) {
      this.retire(conn, "the agent is stopping");
      throw new ServerError(this.stopped ? "SERVER_UNAVAILABLE" : "SERVER_START_FAILED", "stopped while starting");
    }
    this.conn = conn;
    this.listed = true;
    this.retryMs = RETRY_FIRST_MS;
    this.log.info({ server: this.name, pid: conn.pid, tools: tools.length }, "MCP server started");
    this.options.onTools(tools);
    this.scheduleIdle();
    return conn;
  }

  /** Every page of tools/list, bounded in pages and tools. */
  private async listTools(conn: Connection): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const answer = await conn.client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: LIST_PAGE_TIMEOUT_MS });
      tools.push(...answer.tools.slice(0, MAX_LISTED_TOOLS - tools.length));
      cursor = answer.nextCursor;
      if (cursor === undefined || tools.length >= MAX_LISTED_TOOLS) return tools;
    }
    this.log.warn({ server: this.name, pages: MAX_LIST_PAGES, tools: tools.length }, "MCP server's tools/list did not end; using the pages read");
    return tools;
  }

  private scheduleRelist(conn: Connection): void {
    if (this.relistTimer) clearTimeout(this.relistTimer);
    this.relistTimer = setTimeout(() => {
      this.relistTimer = null;
      if (conn !== this.conn || conn.closed) return;
      this.listTools(conn).then(
        (tools) => {
          if (conn === this.conn && !this.stopped) this.options.onTools(tools);
        },
        (err: unknown) => this.log.warn({ server: this.name, err: errorMessage(err) }, "MCP server's tools could not be listed again"),
      );
    }, RELIST_DEBOUNCE_MS);
    this.relistTimer.unref();
  }

  /** Asks the connection to close (stdin closed, then SIGTERM, then SIGKILL); `stop` waits for all of these. */
  private retire(conn: Connection, reason: string): void {
    if (conn.retiring) return;
    conn.retiring = true;
    if (this.conn === conn) this.conn = null;
    if (!conn.closed) this.log.info({ server: this.name, pid: conn.pid, reason }, "stopping MCP server");
    const closing: Promise<void> = conn.client
      .close()
      .catch(() => {})
      .then(() => Promise.race([conn.gone, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]))
      .finally(() => this.closing.delete(closing));
    this.closing.add(closing);
  }

  private gone(conn: Connection): void {
    conn.closed = true;
    conn.markGone();
    if (this.conn === conn) this.conn = null;
    if (!conn.retiring) this.log.warn({ server: this.name, pid: conn.pid, overflow: conn.overflow || undefined }, "MCP server exited; the next call starts it again");
  }

  private scheduleIdle(): void {
    this.clearIdle();
    if (this.active > 0 || !this.conn || this.stopped) return;
    const conn = this.conn;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.active === 0 && this.conn === conn) this.retire(conn, "idle");
    }, this.options.config.idleTimeout);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}
