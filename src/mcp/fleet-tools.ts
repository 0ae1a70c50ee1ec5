import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { WorkerView } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import type { Manager } from "../manager/manager.js";
import { CAPS, clip } from "./answer-budget.js";
import { AllStatusOutput, FleetSummaryOutput, StatusEntry } from "./schemas.js";
import { capStatus, PAGE_CAPS } from "./status-view.js";
import { answer, cursorArg, PROVENANCE, type ToolOptions, labelFilter, limitArg, pageAnswer, readOnly, stateFilter, toolError } from "./tool-kit.js";
import { countStates, cursorAfter, eventOut, filterWorkers, page, pressureScore, statusEntry } from "./views.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * The SDK's client handles a notification a turn later than a response that arrives in the same read, so a
 * progress written just before the result would reach it after the request ended ("unknown token").
 */
const PROGRESS_GAP_MS = 20;

/** A page of cached entries is small; one of full statuses asked now is many times larger. */
const ALL_DEFAULT_LIMIT = 100;
const ALL_FRESH_DEFAULT_LIMIT = 10;

/** Runs `fn` over `items` with at most `n` at a time; stops starting new ones once `signal` aborts. */
async function pool<T>(items: T[], n: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length && !signal.aborted) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

export function registerAllWorkersStatus(server: McpServer, manager: Manager, options: ToolOptions): void {
  const { registry } = manager;
  server.registerTool(
    "get_all_workers_status",
    {
      title: "Get every worker's status",
      description:
        "Counts by state, and each worker's latest metrics (CPU, memory, fullest disk, battery, network, " +
        "temperature), problems first, a page at a time. fresh=true asks every worker on the page now, in " +
        "parallel, with progress as they answer, and an error for each that did not; statuses are cut short " +
        `(listed in omitted). ${PROVENANCE}`,
      inputSchema: {
        fresh: z.boolean().default(false).describe("ask each worker now instead of using heartbeats"),
        state: stateFilter,
        label: labelFilter,
        limit: limitArg(`workers per page (default ${ALL_DEFAULT_LIMIT}, or ${ALL_FRESH_DEFAULT_LIMIT} with fresh)`),
        cursor: cursorArg,
      },
      outputSchema: AllStatusOutput.shape,
      annotations: readOnly,
    },
    async ({ fresh, state, label, limit, cursor }, extra) => {
      const matching = filterWorkers(registry.list(), { state, label });
      const paged = page(matching, limit ?? (fresh ? ALL_FRESH_DEFAULT_LIMIT : ALL_DEFAULT_LIMIT), cursor);
      if ("error" in paged) return toolError(paged.error);
      const rows = paged.items.map((v: WorkerView) => ({ v, entry: statusEntry(v) }));
      if (fresh) await askAll(manager, options, rows.map((r) => r.entry), extra);
      const counts = countStates(matching);
      const parsed = rows.map((r) => ({ v: r.v, entry: StatusEntry.parse(r.entry) }));
      return pageAnswer("get_all_workers_status", AllStatusOutput, {
        rows: parsed,
        more: paged.more,
        shown: (r) => r.entry,
        build: (kept, nextCursor) => ({ counts, workers: kept.map((r) => r.entry), nextCursor }),
        cursorAfter: (r) => cursorAfter(r.v),
      });
    },
  );
}

/** Asks every connected worker of `entries` for its full status, filling in each entry's status or error. */
async function askAll(manager: Manager, options: ToolOptions, entries: StatusEntry[], extra: Extra): Promise<void> {
  const token = extra._meta?.progressToken;
  let done = 0;
  let lastProgressAt = -Infinity;
  await pool(entries, options.freshConcurrency ?? 64, extra.signal, async (entry) => {
    if (!entry.connected) {
      entry.error = `not connected (${entry.state})`;
    } else {
      try {
        const full = await manager.request(entry.id, "status.snapshot", {}, { timeoutMs: options.requestTimeoutMs, signal: extra.signal });
        const capped = capStatus(full, PAGE_CAPS);
        entry.status = capped.status;
        if (capped.omitted.length > 0) entry.omitted = capped.omitted;
      } catch (err) {
        entry.error = clip(errorMessage(err), CAPS.error);
      }
    }
    done++;
    // The last answer is announced by the result itself. A progress sent just before it can reach the client in
    // the same read; the SDK client then handles the result first and reports the progress as one for an unknown
    // request.
    if (token !== undefined && !extra.signal.aborted && done < entries.length) {
      await extra
        .sendNotification({
          method: "notifications/progress",
          params: { progressToken: token, progress: done, total: entries.length, message: `${entry.id}: ${entry.error ?? "ok"}` },
        })
        .catch(() => {});
      lastProgressAt = performance.now();
    }
  });
  // The same holds for a progress sent just before the last answer came in: the result follows it at once. A
  // short pause lets the client read the progress on its own first.
  const sinceProgress = performance.now() - lastProgressAt;
  if (sinceProgress < PROGRESS_GAP_MS) await new Promise((resolve) => setTimeout(resolve, PROGRESS_GAP_MS - sinceProgress));
}

const PRESSURE_SHOWN = 5;
const TRANSITIONS_SHOWN = 10;

export function registerFleetSummary(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "get_fleet_summary",
    {
      title: "Fleet summary",
      description:
        "The fleet at a glance: counts by state and connected workers (observed by the manager), total CPU cores " +
        `and memory (summed from what the workers report), the ${PRESSURE_SHOWN} workers under most resource ` +
        `pressure (reported metrics), and the ${TRANSITIONS_SHOWN} most recent health transitions.`,
      outputSchema: FleetSummaryOutput.shape,
      annotations: readOnly,
    },
    async () => {
      const views = registry.list();
      const connected = views.filter((v) => v.connected);
      const pressured = connected
        .map((v) => ({ v, score: pressureScore(v) }))
        .filter((x): x is { v: WorkerView; score: number } => x.score !== null)
        .sort((a, b) => b.score - a.score)
        .slice(0, PRESSURE_SHOWN);
      return answer("get_fleet_summary", FleetSummaryOutput, {
        counts: countStates(views),
        connected: connected.length,
        totalCores: connected.reduce((sum, v) => sum + (v.metrics?.cores ?? 0), 0),
        totalMemoryBytes: connected.reduce((sum, v) => sum + (v.metrics?.memTotal ?? 0), 0),
        underPressure: pressured.map(({ v, score }) => ({
          id: v.id,
          state: v.state,
          score,
          cpu: v.metrics?.cpu ?? null,
          mem: v.metrics?.mem ?? null,
          disk: v.metrics?.disk ? { mount: clip(v.metrics.disk.mount, CAPS.text), used: v.metrics.disk.used } : null,
        })),
        recentTransitions: registry.events({ limit: TRANSITIONS_SHOWN }).map(eventOut),
      });
    },
  );
}
