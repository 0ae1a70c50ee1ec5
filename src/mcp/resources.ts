import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError, SubscribeRequestSchema, UnsubscribeRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { HealthEvent } from "../core/registry.js";
import type { Logger } from "../log.js";
import type { Manager } from "../manager/manager.js";
import { problemsFirst, unknownWorkerMessage, workerEntry } from "./views.js";

export const WORKERS_URI = "fleet://workers";
export const workerUri = (id: string) => `${WORKERS_URI}/${id}`;

// Health changes arriving within this window become one notification per resource.
const COALESCE_MS = 250;

const json = (uri: string, data: unknown) => ({ contents: [{ uri, mimeType: "application/json", text: JSON.stringify(data) }] });

/**
 * `fleet://workers` and `fleet://workers/{id}`, with subscriptions. A subscriber hears of a worker's state
 * changes (not of every heartbeat: those would flood it), coalesced per resource.
 */
export function registerResources(server: McpServer, manager: Manager, log: Logger): { stop: () => void } {
  const { registry } = manager;
  const subscribed = new Set<string>();
  const pending = new Set<string>();
  let listChanged = false;
  let timer: NodeJS.Timeout | null = null;

  server.registerResource(
    "workers",
    WORKERS_URI,
    { title: "All workers", description: "Every known worker with its health state, problem workers first", mimeType: "application/json" },
    async (uri) => {
      const workers = problemsFirst(registry.list()).map(workerEntry);
      return json(uri.href, { workers, total: workers.length });
    },
  );

  server.registerResource(
    "worker",
    new ResourceTemplate(`${WORKERS_URI}/{id}`, {
      list: async () => ({
        resources: registry.list().map((v) => ({
          uri: workerUri(v.id),
          name: v.id,
          description: `${v.hostname}: ${v.state}`,
          mimeType: "application/json",
        })),
      }),
    }),
    { title: "One worker", description: "One worker's health and its latest heartbeat metrics", mimeType: "application/json" },
    async (uri, { id }) => {
      const view = registry.get(String(id));
      if (!view) {
        throw new McpError(ErrorCode.InvalidParams, unknownWorkerMessage(String(id), registry.list().map((v) => v.id)));
      }
      return json(uri.href, { worker: workerEntry(view), metrics: view.metrics, metricsAgeMs: view.lastHeartbeatAgeMs });
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
      server.server.sendResourceUpdated({ uri }).catch((err: unknown) => log.debug({ err }, "resource notification failed"));
    }
    pending.clear();
    if (listChanged) server.sendResourceListChanged();
    listChanged = false;
  };

  const unsubscribe = manager.onEvent((e: HealthEvent) => {
    // A worker joined, or left the registry (forgotten): the template's list changed.
    if (e.from === null || e.reasons.some((r) => r.code === "forgotten" || r.code === "expired_offline")) listChanged = true;
    for (const uri of [WORKERS_URI, workerUri(e.worker)]) if (subscribed.has(uri)) pending.add(uri);
    if ((pending.size > 0 || listChanged) && !timer) timer = setTimeout(flush, COALESCE_MS);
  });

  return {
    stop: () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    },
  };
}
