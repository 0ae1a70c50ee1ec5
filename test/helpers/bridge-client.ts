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
import { CLI, type LogLine } from "./processes.js";

/**
 * `mcp-fleet connect` as Claude Desktop runs it: spawned by the SDK's stdio client transport and spoken to with
 * the SDK's Client, collecting the bridge's stderr log and the notifications it passes on, with arrival times.
 */
export class BridgeClient {
  readonly lines: LogLine[] = [];
  readonly logging: Array<LoggingMessageNotification["params"] & { receivedAt: number }> = [];
  readonly updated: Array<{ uri: string; receivedAt: number }> = [];
  readonly protocolErrors: Error[] = [];
  /** Methods of the notifications no handler above took (list_changed and the like), in order. */
  readonly otherNotifications: string[] = [];

  private constructor(readonly client: Client) {}

  /** With `onElicit`, the client declares elicitation and answers each elicitation/create with it. */
  static async start(
    args: string[],
    name = "bridge-test",
    onElicit?: (request: ElicitRequest["params"]) => ElicitResult,
    /** Runs first and execs the bridge, e.g. the namespace lab's `ip netns exec HOST`. */
    launcher: string[] = [],
  ): Promise<BridgeClient> {
    const argv = [...launcher, process.execPath, CLI, "connect", ...args];
    const transport = new StdioClientTransport({
      command: argv[0]!,
      args: argv.slice(1),
      env: { ...process.env } as Record<string, string>,
      stderr: "pipe",
    });
    const client = new Client({ name, version: "4.5.6" }, { capabilities: onElicit ? { elicitation: {} } : {} });
    if (onElicit) client.setRequestHandler(ElicitRequestSchema, (request) => onElicit(request.params));
    const b = new BridgeClient(client);
    createInterface({ input: transport.stderr as unknown as NodeJS.ReadableStream }).on("line", (text) => {
      try {
        b.lines.push({ ...(JSON.parse(text) as object), receivedAt: performance.now() });
      } catch {
        b.lines.push({ raw: text, receivedAt: performance.now() });
      }
    });
    client.onerror = (err) => b.protocolErrors.push(err);
    client.fallbackNotificationHandler = async (n) => void b.otherNotifications.push(n.method);
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void b.logging.push({ ...n.params, receivedAt: performance.now() }));
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void b.updated.push({ uri: n.params.uri, receivedAt: performance.now() }));
    await client.connect(transport);
    return b;
  }

  async call(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args })) as CallToolResult;
  }

  async ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    const r = await this.call(name, args);
    if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
    return r.structuredContent as T;
  }

  /** Resolves with the first entry of `list` that `pred` picks, polling every 10 ms; rejects after `timeoutMs`. */
  async waitFor<T>(list: T[], pred: (x: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const hit = list.find(pred);
      if (hit) return hit;
      if (performance.now() > deadline) {
        throw new Error(`no ${what} within ${timeoutMs} ms: ${JSON.stringify(list.slice(-5))}\nbridge log: ${this.lines.slice(-8).map((l) => JSON.stringify(l)).join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
