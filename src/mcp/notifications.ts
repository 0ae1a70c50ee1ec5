import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import type { HealthEvent } from "../core/registry.js";
import type { Manager } from "../manager/manager.js";
import { NO_METRICS } from "../metrics/sink.js";
import { formatDuration } from "../config/duration.js";
import { TransitionDigest, type StateCounts, type WorkerSummary } from "./transition-digest.js";

const has = (e: HealthEvent, code: string) => e.reasons.some((r) => r.code === code);

/** How a transition is told to the MCP client: an alarm is a warning, the rest is news. */
export function describeTransition(e: HealthEvent): { level: LoggingLevel; message: string } {
  const why = e.reasons
    .filter((r) => r.code !== "returned_after_restart")
    .map((r) => r.message)
    .join("; ");
  if (has(e, "forgotten")) return { level: "info", message: `worker ${e.worker} was forgotten: removed from the registry on request (was ${e.from})` };
  if (has(e, "expired_offline")) return { level: "info", message: `worker ${e.worker} was ${why}` };
  if (has(e, "revoked")) return { level: "notice", message: `worker ${e.worker} is offline: its certificate was revoked` };
  if (has(e, "returned_after_restart")) {
    const level: LoggingLevel = e.to === "degraded" ? "notice" : e.to === "unhealthy" ? "warning" : "info";
    return { level, message: `worker ${e.worker} is back after the manager restart (${e.to}${why ? `: ${why}` : ""})` };
  }
  if (e.to === "unhealthy") return { level: "warning", message: `worker ${e.worker} is unhealthy: ${why}` };
  if (e.to === "offline") return { level: "info", message: `worker ${e.worker} went offline (${why})` };
  if (e.to === "degraded") return { level: "notice", message: `worker ${e.worker} is degraded: ${why}` };
  if (e.from === null) return { level: "info", message: `worker ${e.worker} joined the fleet` };
  return { level: "info", message: `worker ${e.worker} recovered (was ${e.from})` };
}

const countsText = (byState: StateCounts) =>
  Object.entries(byState)
    .map(([state, n]) => `${n} → ${state}`)
    .join(", ");

/** How a worker's transitions that came too fast to tell one by one are told, together. */
export function describeWorkerSummary(w: WorkerSummary): { level: LoggingLevel; message: string } {
  return {
    level: w.latest === "unhealthy" ? "warning" : "info",
    message:
      `worker ${w.worker} changed state ${w.count} more times in ${formatDuration(w.spanMs)} (${countsText(w.byState)}), ` +
      `now ${w.latest}; not told one by one: get_worker_events has each`,
  };
}

/** How often held transitions are summed up into one notification. */
const DIGEST_EVERY_MS = 1000;

/**
 * MCP logging notifications for health transitions: each one as it happens, up to a rate; beyond it (a reconnect
 * storm, a network split) one digest a second that counts them by state and points at the tools for details. A
 * worker that changes state faster than its own small budget is summed up on its own (see TransitionDigest).
 */
export function registerTransitionLogging(server: McpServer, manager: Manager): () => void {
  const digest = new TransitionDigest(10, 30, performance.now());
  const metrics = manager.metrics ?? NO_METRICS;
  const send = (level: LoggingLevel, data: Record<string, unknown>) => {
    if (!server.isConnected()) return metrics.notification("transition", "dropped");
    metrics.notification("transition", "sent");
    // A client that went away is noticed by the transport, not here.
    // Over HTTP each session sets its own level, kept under its session id.
    server.sendLoggingMessage({ level, logger: "mcp-fleet", data }, server.server.transport?.sessionId).catch(() => metrics.notification("transition", "failed"));
  };
  const timer = setInterval(() => {
    const { digest: held, workers } = digest.flush(performance.now());
    for (const w of workers) {
      const { level, message } = describeWorkerSummary(w);
      send(level, { message, worker: w.worker, count: w.count, byState: w.byState, to: w.latest });
    }
    if (!held) return;
    send(held.byState.unhealthy ? "warning" : "info", {
      message:
        `${held.count} more worker transitions in the last second (${countsText(held.byState)}), not told one by one; ` +
        "list_workers or get_fleet_summary has the whole picture",
      count: held.count,
      byState: held.byState,
      someWorkers: held.someWorkers,
    });
  }, DIGEST_EVERY_MS);
  timer.unref();
  const stop = manager.onEvent((e) => {
    if (!digest.offer(e, performance.now())) return metrics.notification("transition", "coalesced");
    const { level, message } = describeTransition(e);
    send(level, { message, worker: e.worker, from: e.from, to: e.to, reasons: e.reasons, at: new Date(e.at).toISOString() });
  });
  return () => {
    clearInterval(timer);
    stop();
  };
}
