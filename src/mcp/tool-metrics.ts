import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ManagerMetrics } from "../metrics/sink.js";

type AnyCallback = (...args: unknown[]) => unknown;

/**
 * Every tool registered on `server` from here on is counted and timed: its handler is wrapped once, where tools
 * are registered, so no tool can be added without it. An error result and a thrown error both count as `error`.
 */
export function instrumentTools(server: McpServer, metrics: Pick<ManagerMetrics, "toolCalled">): void {
  const register = server.registerTool.bind(server) as (name: string, config: unknown, cb: AnyCallback) => unknown;
  const wrapped = (name: string, config: unknown, cb: AnyCallback) =>
    register(name, config, async (...args: unknown[]) => {
      const start = performance.now();
      try {
        const result = await cb(...args);
        const failed = (result as { isError?: boolean } | undefined)?.isError === true;
        metrics.toolCalled(name, failed ? "error" : "ok", (performance.now() - start) / 1000);
        return result;
      } catch (err) {
        metrics.toolCalled(name, "error", (performance.now() - start) / 1000);
        throw err;
      }
    });
  server.registerTool = wrapped as McpServer["registerTool"];
}
