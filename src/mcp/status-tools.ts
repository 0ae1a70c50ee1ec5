import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { WorkerView } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import type { Manager } from "../manager/manager.js";
import type { FullStatus } from "../protocol/status.js";
import { CAPS, clip } from "./answer-budget.js";
import { ListWorkersOutput, WorkerStatusOutput } from "./schemas.js";
import { capMetrics, capStatus, DETAIL_CAPS } from "./status-view.js";
import { answer, answerWithin, cursorArg, PROVENANCE, type ToolOptions, labelFilter, limitArg, pageAnswer, readOnly, stateFilter, toolError, workerId } from "./tool-kit.js";
import {
  countStates,
  cursorAfter,
  filterWorkers,
  page,
  shownUnverified,
  unknownWorkerMessage,
  unverifiedAnnouncements,
  workerDetail,
  workerRow,
} from "./views.js";

const LIST_DEFAULT_LIMIT = 100;

export function registerListWorkers(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "list_workers",
    {
      title: "List workers",
      description:
        "Known workers, problems first, a page at a time, with counts by state (of those matching, and of the " +
        "fleet). A row: id, state, reason codes, connected, heartbeat age, labels; get_worker_status has the " +
        `rest. ${PROVENANCE} Apart, \`unverified\`: hosts announcing the agent on the LAN without a session (e.g. a ` +
        `refused certificate), at most ${CAPS.unverified}, with their total.`,
      inputSchema: {
        state: stateFilter,
        label: labelFilter,
        limit: limitArg(`workers per page (default ${LIST_DEFAULT_LIMIT})`),
        cursor: cursorArg,
      },
      outputSchema: ListWorkersOutput.shape,
      annotations: readOnly,
    },
    async ({ state, label, limit, cursor }) => {
      const all = registry.list();
      const matching = filterWorkers(all, { state, label });
      const paged = page(matching, limit ?? LIST_DEFAULT_LIMIT, cursor);
      if ("error" in paged) return toolError(paged.error);
      const shown = shownUnverified(
        unverifiedAnnouncements(manager.workerAnnouncements(), (id) => registry.get(id)?.connected === true, manager.fleetId, performance.now()),
      );
      const counts = countStates(matching);
      const fleet = state === undefined && label === undefined ? counts : countStates(all);
      const rows = paged.items.map((v) => ({ v, row: workerRow(v) }));
      return pageAnswer("list_workers", ListWorkersOutput, {
        rows,
        more: paged.more,
        shown: (r) => r.row,
        build: (kept, nextCursor) => ({ total: matching.length, counts, fleet, workers: kept.map((r) => r.row), nextCursor, ...shown }),
        cursorAfter: (r) => cursorAfter(r.v),
      });
    },
  );
}

export function registerWorkerStatus(server: McpServer, manager: Manager, options: ToolOptions): void {
  const { registry } = manager;
  server.registerTool(
    "get_worker_status",
    {
      title: "Get one worker's status",
      description:
        "One host in full: the manager's view, its hello (worker.reported), and its full status asked now: OS, " +
        "kernel, CPU and per-core load, load average, memory, swap, filesystems, network rates, battery, " +
        "temperatures, uptime. If it cannot answer in time, its last heartbeat's summary, marked stale with the " +
        `reason; fresh=false returns that without asking. Long lists are cut (listed in omitted). ${PROVENANCE}`,
      inputSchema: {
        worker_id: workerId,
        fresh: z.boolean().default(true).describe("ask the worker now (default) rather than use its last heartbeat"),
      },
      outputSchema: WorkerStatusOutput.shape,
      annotations: readOnly,
    },
    async ({ worker_id, fresh }, extra) => {
      const view = registry.get(worker_id);
      if (!view) return toolError(unknownWorkerMessage(worker_id, registry.list().map((v) => v.id).sort()));
      if (!fresh) return workerStatusAnswer(view, null, null);
      if (!view.connected) {
        const why = view.reasons.map((r) => r.message).join("; ");
        return workerStatusAnswer(view, null, `worker is not connected (${view.state}${why ? `: ${why}` : ""})`);
      }
      try {
        const status = await manager.request(worker_id, "status.snapshot", {}, { timeoutMs: options.requestTimeoutMs, signal: extra.signal });
        return workerStatusAnswer(registry.get(worker_id) ?? view, status, null);
      } catch (err) {
        return workerStatusAnswer(view, null, `the worker did not answer: ${errorMessage(err)}`);
      }
    },
  );
}

/**
 * get_worker_status's answer: the full status if the worker gave one, else its last heartbeat's summary (stale
 * when `staleReason` says why). The status is cut by the first of DETAIL_CAPS that fits the budget.
 */
export function workerStatusAnswer(view: WorkerView, status: FullStatus | null, staleReason: string | null): CallToolResult {
  const base = {
    worker: workerDetail(view),
    source: status ? ("worker" as const) : ("heartbeat" as const),
    stale: staleReason !== null,
    staleReason: staleReason === null ? null : clip(staleReason, CAPS.error),
    status: null,
    metrics: capMetrics(view.metrics),
    metricsAgeMs: view.lastHeartbeatAgeMs,
  };
  if (!status) return answer("get_worker_status", WorkerStatusOutput, base);
  for (const caps of DETAIL_CAPS) {
    const capped = capStatus(status, caps);
    const fitted = answerWithin(WorkerStatusOutput, {
      ...base,
      status: capped.status,
      ...(capped.omitted.length > 0 ? { omitted: capped.omitted } : {}),
    });
    if (fitted) return fitted;
  }
  return answer("get_worker_status", WorkerStatusOutput, { ...base, omitted: ["status: too large for one answer even when cut"] });
}
