import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
  type ElicitRequest,
  type ElicitResult,
  type LoggingMessageNotification,
} from "@modelcontextprotocol/sdk/types.js";
import type { CertSet } from "./fleet.js";
import { CLI, type LogLine } from "./processes.js";

/**
 * The manager as Claude Desktop runs it: spawned by the SDK's stdio client transport, spoken to with the SDK's
 * Client. Its stderr log is collected as in `Proc`. Any line on its stdout that is not JSON-RPC makes the SDK
 * transport report an error, collected in `protocolErrors`.
 */
export interface McpManagerOptions {
  /** Listen on this port instead of a free one (a restart on the same port, for workers to come back to). */
  port?: number;
  /** Declare elicitation, and answer each elicitation/create with this (Claude Code does; Claude Desktop does not). */
  onElicit?: (request: ElicitRequest["params"]) => ElicitResult | Promise<ElicitResult>;
}

export class McpManager {
  readonly lines: LogLine[] = [];
  readonly logging: LoggingMessageNotification["params"][] = [];
  readonly updated: Array<{ uri: string; at: number }> = [];
  readonly protocolErrors: Error[] = [];
  port = 0;
  private child: ChildProcess | undefined;
  private exitInfo: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

  private constructor(
    readonly client: Client,
    readonly transport: StdioClientTransport,
  ) {}

  /**
   * On loopback by default. In the namespace lab, pass the host's `launcher` and `mdns: true`: it then listens on
   * all of that host's addresses, on the usual port, and announces itself.
   */
  static async start(
    certs: CertSet,
    extra: string[] = [],
    lab: { launcher: string[]; mdns: true } | null = null,
    options: McpManagerOptions = {},
  ): Promise<McpManager> {
    const argv = [
      ...(lab?.launcher ?? []),
      process.execPath, CLI, "manager",
      "--ca", certs.ca, "--cert", certs.managerCert, "--key", certs.managerKey,
      ...(lab ? [] : ["--host", "127.0.0.1", "--port", String(options.port ?? 0), "--no-mdns"]), // loopback only: no multicast on real interfaces
      "--pressure-percent", "0",
      "--state", join(certs.dir, "state.json"),
      // Parallel tests would race for the default metrics port; a test that wants metrics passes its own.
      "--metrics-listen", "off",
      ...extra,
    ];
    const transport = new StdioClientTransport({
      command: argv[0]!,
      args: argv.slice(1),
      env: { ...process.env } as Record<string, string>,
      stderr: "pipe",
    });
    const onElicit = options.onElicit;
    const client = new Client({ name: "mcp-fleet-test", version: "0.0.0" }, { capabilities: onElicit ? { elicitation: {} } : {} });
    if (onElicit) client.setRequestHandler(ElicitRequestSchema, (request) => onElicit(request.params));
    const m = new McpManager(client, transport);
    // With stderr: "pipe" the transport hands out a PassThrough at once, before the child even starts.
    createInterface({ input: transport.stderr as unknown as NodeJS.ReadableStream }).on("line", (text) => {
      try {
        m.lines.push({ ...(JSON.parse(text) as object), receivedAt: performance.now() });
      } catch {
        m.lines.push({ raw: text, receivedAt: performance.now() });
      }
    });
    client.onerror = (err) => m.protocolErrors.push(err);
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void m.logging.push(n.params));
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void m.updated.push({ uri: n.params.uri, at: performance.now() }));
    await client.connect(transport);
    // The transport keeps its child private; the exit code is part of what the tests check.
    m.child = (transport as unknown as { _process?: ChildProcess })._process;
    m.exitInfo = new Promise((resolve) => m.child?.once("exit", (code, signal) => resolve({ code, signal })));
    const deadline = performance.now() + 10_000;
    while (!m.lines.some((l) => l.msg === "manager listening")) {
      if (performance.now() > deadline) throw new Error(`manager did not start: ${JSON.stringify(m.lines.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    m.port = m.lines.find((l) => l.msg === "manager listening")!.port as number;
    return m;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}`;
  }

  /** The manager's own pid (for /proc/<pid>/status). */
  get pid(): number {
    return this.child!.pid!;
  }

  get exited() {
    return this.exitInfo!;
  }

  async call(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args })) as CallToolResult;
  }

  /** Calls a tool that must succeed; returns its structured content after checking the text says the same. */
  async ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    const r = await this.call(name, args);
    if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
    const text = (r.content[0] as { text: string }).text;
    if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(r.structuredContent)) {
      throw new Error(`${name}: text content differs from structuredContent`);
    }
    return r.structuredContent as T;
  }

  /** Polls list_workers until `pred` holds for worker `id`. */
  async waitForWorker(id: string, pred: (w: { state: string; connected: boolean }) => boolean, timeoutMs: number): Promise<number> {
    const start = performance.now();
    for (;;) {
      const { workers } = await this.ok<{ workers: Array<{ id: string; state: string; connected: boolean }> }>("list_workers");
      const w = workers.find((x) => x.id === id);
      if (w && pred(w)) return performance.now() - start;
      if (performance.now() - start > timeoutMs) throw new Error(`${id} not as expected within ${timeoutMs} ms: ${JSON.stringify(w)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Closes stdin the way an MCP client does when it quits. */
  async close(): Promise<void> {
    await this.client.close();
  }

  kill(): void {
    this.child?.kill("SIGKILL");
  }
}
