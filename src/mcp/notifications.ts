import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import type { HealthEvent } from "../core/registry.js";
import type { Manager } from "../manager/manager.js";
import { TransitionDigest } from "./transition-digest.js";

/** How a transition is told to the MCP client: an alarm is a warning, the rest is news. */
export function describeTransition(e: HealthEvent): { level: LoggingLevel; message: string } {
  const why = e.reasons.map((r) => r.message).join("; ");
  if (e.to === "unhealthy") return { level: "warning", message: `worker ${e.worker} is unhealthy: ${why}` };
  if (e.to === "offline") return { level: "info", message: `worker ${e.worker} went offline (${why})` };
  if (e.to === "degraded") return { level: "notice", message: `worker ${e.worker} is degraded: ${why}` };
  if (e.from === null) return { level: "info", message: `worker ${e.worker} joined the fleet` };
  return { level: "info", message: `worker ${e.worker} recovered (was ${e.from})` };
}

/** How often held transitions are summed up into one notification. */
const DIGEST_EVERY_MS = 1000;

/**
 * MCP logging notifications for health transitions: each one as it happens, up to a rate; beyond it (a reconnect
 * storm, a network split) one digest a second that counts them by state and points at the tools for details.
 */
export function registerTransitionLogging(server: McpServer, manager: Manager): () => void {
  const digest = new TransitionDigest(10, 30, performance.now());
  const send = (level: LoggingLevel, data: Record<string, unknown>) => {
    if (!server.isConnected()) return;
    // A client that went away is noticed by the transport, not here.
    server.sendLoggingMessage({ level, logger: "mcp-fleet", data }).catch(() => {});
  };
  const timer = setInterval(() => {
    const held = digest.flush();
    if (!held) return;
    const states = Object.entries(held.byState).map(([state, n]) => `${n} → ${state}`).join(", ");
    send(held.byState.unhealthy ? "warning" : "info", {
      message:
        `${held.count} more worker transitions in the last second (${states}), not told one by one; ` +
        "list_workers or get_fleet_summary has the whole picture",
      count: held.count,
      byState: held.byState,
      someWorkers: held.someWorkers,
    });
  }, DIGEST_EVERY_MS);
  timer.unref();
  const stop = manager.onEvent((e) => {
    if (!digest.offer(e, performance.now())) return;
    const { level, message } = describeTransition(e);
    send(level, { message, worker: e.worker, from: e.from, to: e.to, reasons: e.reasons, at: new Date(e.at).toISOString() });
  });
  return () => {
    clearInterval(timer);
    stop();
  };
}
