import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  type CallToolResult,
  type LoggingMessageNotification,
} from "@modelcontextprotocol/sdk/types.js";
import { connectToManager } from "../../src/client/connect.js";

/** Where `certs issue --role <role> <id>` writes a person's certificate. */
export function personCert(dir: string, role: "operator" | "viewer", id: string): { cert: string; key: string } {
  const sub = role === "operator" ? "operators" : "viewers";
  return { cert: join(dir, sub, `${id}.pem`), key: join(dir, sub, `${id}-key.pem`) };
}

/**
 * An SDK client as the tests drive it: tool calls, and the log and resource notifications it gets with the time
 * each arrived. `context` adds what a failed wait should show besides the list it waited on.
 */
export class CollectingMcp {
  readonly logging: Array<LoggingMessageNotification["params"] & { receivedAt: number }> = [];
  readonly updated: Array<{ uri: string; receivedAt: number }> = [];

  protected constructor(readonly client: Client) {
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void this.logging.push({ ...n.params, receivedAt: performance.now() }));
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void this.updated.push({ uri: n.params.uri, receivedAt: performance.now() }));
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
      if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms: ${JSON.stringify(list.slice(-5))}${this.context()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  protected context(): string {
    return "";
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

/**
 * An MCP client of a daemon manager, over Streamable HTTP with an operator's or viewer's certificate (our own
 * connector, src/client/connect.ts).
 */
export class HttpMcp extends CollectingMcp {
  static async connect(port: number, ca: string, who: { cert: string; key: string }, name = "daemon-test"): Promise<HttpMcp> {
    const client = await connectToManager({ url: `https://127.0.0.1:${port}/mcp`, ca, ...who, clientInfo: { name, version: "1.2.3" } });
    return new HttpMcp(client);
  }
}
