import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError, SubscribeRequestSchema, UnsubscribeRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { HealthEvent } from "../core/registry.js";
import type { Logger } from "../log.js";
import type { Manager } from "../manager/manager.js";
import { NO_METRICS } from "../metrics/sink.js";
import { fitRows } from "./answer-budget.js";
import { capMetrics } from "./status-view.js";
import { countStates, problemsFirst, unknownWorkerMessage, workerDetail, workerRow } from "./views.js";

export const WORKERS_URI = "fleet://workers";
export const workerUri = (id: string) => `${WORKERS_URI}/${id}`;

// Health changes arriving within this window become one notification per resource.
const COALESCE_MS = 250;

/** `fleet://workers` and the template's list name this many workers at most, problem workers first. */
const RESOURCE_ROWS = 100;

const json = (uri: string, data: unknown) => ({ contents: [{ uri, mimeType: "application/json", text: JSON.stringify(data) }] });

/**
 * `fleet://workers` and `fleet://workers/{id}`, with subscriptions. A subscriber hears of a worker's state
 * changes (not of every heartbeat: those would flood it), coalesced per resource.
 */
export function registerResources(server: McpServer, manager: Manager, log: Logger): { stop: () => void } {
  const { registry } = manager;
  const metrics = manager.metrics ?? NO_METRICS;
  const subscribed = new Set<string>();
  const pending = new Set<string>();
  let listChanged = false;
  let timer: NodeJS.Timeout | null = null;

  server.registerResource(
    "workers",
    WORKERS_URI,
    {
      title: "Workers",
      description: `Counts by state and the first ${RESOURCE_ROWS} workers, problem workers first, as list_workers rows (list_workers pages through the rest)`,
      mimeType: "application/json",
    },
    async (uri) => {
      const views = registry.list();
      const rows = problemsFirst(views).slice(0, RESOURCE_ROWS).map(workerRow);
      const envelope = { counts: countStates(views), total: views.length, more: false, workers: [] };
      const fitted = fitRows(rows, JSON.stringify(envelope).length);
      return json(uri.href, { ...envelope, more: fitted.cut || views.length > rows.length, workers: fitted.rows });
    },
  );

  server.registerResource(
    "worker",
    new ResourceTemplate(`${WORKERS_URI}/{id}`, {
      list: async () => ({
        resources: problemsFirst(registry.list()).slice(0, RESOURCE_ROWS).map((v) => ({
          uri: workerUri(v.id),
          name: v.id,
          description: v.state,
          mimeType: "application/json",
        })),
      }),
    }),
    {
      title: "One worker",
      description: "One worker's health (observed by the manager) and its latest heartbeat metrics (reported by the worker); the list names the first workers, problem workers first",
      mimeType: "application/json",
    },
    async (uri, { id }) => {
      const view = registry.get(String(id));
      if (!view) {
        throw new McpError(ErrorCode.InvalidParams, unknownWorkerMessage(String(id), registry.list().map((v) => v.id)));
      }
      return json(uri.href, { worker: workerDetail(view), metrics: capMetrics(view.metrics), metricsAgeMs: view.lastHeartbeatAgeMs });
    },
  );

  server.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    subscribed.add(req.params.uri);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    subscribed.delete(req.params.uri);
    return {};
  });

  const flush = () => {
    timer = null;
    if (!server.isConnected()) return;
    for (const uri of pending) {
      metrics.notification("resource", "sent");
      server.server.sendResourceUpdated({ uri }).catch((err: unknown) => {
        metrics.notification("resource", "failed");
        log.debug({ err }, "resource notification failed");
      });
    }
    pending.clear();
    if (listChanged) server.sendResourceListChanged();
    listChanged = false;
  };

  const unsubscribe = manager.onEvent((e: HealthEvent) => {
    // A worker joined, or left the registry (forgotten): the template's list changed.
    if (e.from === null || e.reasons.some((r) => r.code === "forgotten" || r.code === "expired_offline")) listChanged = true;
    for (const uri of [WORKERS_URI, workerUri(e.worker)]) {
      if (!subscribed.has(uri)) continue;
      // Already waiting for the flush: this change is told with the one before.
      if (pending.has(uri)) metrics.notification("resource", "coalesced");
      else pending.add(uri);
    }
    if ((pending.size > 0 || listChanged) && !timer) timer = setTimeout(flush, COALESCE_MS);
  });

  return {
    stop: () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    },
  };
}
