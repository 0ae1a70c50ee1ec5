import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema, type ElicitRequest, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { CollectingMcp } from "./mcp-http.js";
import { CLI, type LogLine } from "./processes.js";

/**
 * `mcp-fleet connect` as Claude Desktop runs it: spawned by the SDK's stdio client transport and spoken to with
 * the SDK's Client, collecting the bridge's stderr log and the notifications it passes on, with arrival times.
 */
export class BridgeClient extends CollectingMcp {
  readonly lines: LogLine[] = [];
  readonly protocolErrors: Error[] = [];
  /** Methods of the notifications no handler above took (list_changed and the like), in order. */
  readonly otherNotifications: string[] = [];


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
    await client.connect(transport);
    return b;
  }

  protected override context(): string {
    return `\nbridge log: ${this.lines.slice(-8).map((l) => JSON.stringify(l)).join("\n")}`;
  }
}
