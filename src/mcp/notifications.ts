import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import type { HealthEvent } from "../core/registry.js";
import type { Manager } from "../manager/manager.js";

/** How a transition is told to the MCP client: an alarm is a warning, the rest is news. */
export function describeTransition(e: HealthEvent): { level: LoggingLevel; message: string } {
  const why = e.reasons.map((r) => r.message).join("; ");
  if (e.to === "unhealthy") return { level: "warning", message: `worker ${e.worker} is unhealthy: ${why}` };
  if (e.to === "offline") return { level: "info", message: `worker ${e.worker} went offline (${why})` };
  if (e.to === "degraded") return { level: "notice", message: `worker ${e.worker} is degraded: ${why}` };
  if (e.from === null) return { level: "info", message: `worker ${e.worker} joined the fleet` };
  return { level: "info", message: `worker ${e.worker} recovered (was ${e.from})` };
}

/** MCP logging notifications for every health transition. */
export function registerTransitionLogging(server: McpServer, manager: Manager): () => void {
  return manager.onEvent((e) => {
    if (!server.isConnected()) return;
    const { level, message } = describeTransition(e);
    server
      .sendLoggingMessage({
        level,
        logger: "mcp-fleet",
        data: { message, worker: e.worker, from: e.from, to: e.to, reasons: e.reasons, at: new Date(e.at).toISOString() },
      })
      .catch(() => {}); // a client that went away is noticed by the transport, not here
  });
}
