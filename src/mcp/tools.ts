import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { WorkerView } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import type { Manager } from "../manager/manager.js";
import {
  AllStatusOutput,
  EventsOutput,
  FleetSummaryOutput,
  ListWorkersOutput,
  WorkerStatusOutput,
  type StatusEntry,
} from "./schemas.js";
import {
  countStates,
  eventOut,
  filterWorkers,
  page,
  parseSince,
  pressureScore,
  problemsFirst,
  unknownWorkerMessage,
  unverifiedAnnouncements,
  workerEntry,
} from "./views.js";

export interface ToolOptions {
  /** How long a worker has to answer a status request. */
  requestTimeoutMs: number;
  /** At most this many status requests in flight at once for get_all_workers_status {fresh: true}. */
  freshConcurrency?: number;
}

function result<S extends z.ZodType>(schema: S, data: z.input<S>): CallToolResult {
  const structured = schema.parse(data) as Record<string, unknown>;
  return { structuredContent: structured, content: [{ type: "text", text: JSON.stringify(structured) }] };
}

function toolError(message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: message }] };
}

/**
 * The SDK's client handles a notification a turn later than a response that arrives in the same read, so a
 * progress written just before the result would reach it after the request ended ("unknown token").
 */
const PROGRESS_GAP_MS = 20;
const readOnly = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

// Input fields, with messages written for the model that will read them when it gets an argument wrong.
const stateFilter = z
  .enum(HEALTH_STATES, { error: `state must be one of ${HEALTH_STATES.join(", ")}` })
  .optional()
  .describe("only workers in this state");
const labelFilter = z
  .string()
  .min(1)
  .max(320)
  .optional()
  .describe('only workers with this label: "key=value", or "key" for any value');
const workerId = z.string().min(1, "worker_id must not be empty").max(63, "worker_id is at most 63 characters").describe("a worker id from list_workers");
const limit = (dflt: number) =>
  z
    .number({ error: "limit must be a number" })
    .int("limit must be a whole number")
    .min(1, "limit must be between 1 and 1000")
    .max(1000, "limit must be between 1 and 1000")
    .default(dflt);

/** Runs `fn` over `items` with at most `n` at a time; stops starting new ones once `signal` aborts. */
async function pool<T>(items: T[], n: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length && !signal.aborted) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/**
 * The fixed tool set (docs/architecture.md, fixed decision 6). Clients do not reliably re-read tool lists, so nothing here depends on which
 * workers exist: every tool takes the worker or a filter as an argument.
 */
export function registerTools(server: McpServer, manager: Manager, options: ToolOptions): void {
  const { registry } = manager;
  const known = () => registry.list().map((v) => v.id).sort();

  server.registerTool(
    "list_workers",
    {
      title: "List workers",
      description:
        "Every worker the manager knows, with its health state (healthy, degraded, unhealthy, offline), the reasons " +
        "for it, how long ago its last heartbeat arrived, and its labels. Problem workers come first. Separately, " +
        "`unverified`: hosts announcing the agent on the LAN that are not connected (e.g. a refused certificate).",
      inputSchema: { state: stateFilter, label: labelFilter },
      outputSchema: ListWorkersOutput.shape,
      annotations: { title: "List workers", ...readOnly },
    },
    async ({ state, label }) => {
      const views = problemsFirst(filterWorkers(registry.list(), { state, label }));
      const unverified = unverifiedAnnouncements(
        manager.workerAnnouncements(),
        (id) => registry.get(id)?.connected === true,
        manager.fleetId,
        performance.now(),
      );
      return result(ListWorkersOutput, { workers: views.map(workerEntry), total: views.length, unverified });
    },
  );

  server.registerTool(
    "get_worker_status",
    {
      title: "Get one worker's status",
      description:
        "The full current status of one host, asked from the worker now: OS and kernel, CPU model and load per core, " +
        "load average, memory and swap, filesystems, network interfaces with rates, battery, temperatures, uptime. " +
        "If the worker cannot answer in time, returns its last heartbeat's summary marked stale, with the reason. " +
        "fresh=false returns the last heartbeat's summary without asking.",
      inputSchema: {
        worker_id: workerId,
        fresh: z.boolean().default(true).describe("ask the worker now (default) rather than use its last heartbeat"),
      },
      outputSchema: WorkerStatusOutput.shape,
      annotations: { title: "Get one worker's status", ...readOnly },
    },
    async ({ worker_id, fresh }, extra) => {
      const view = registry.get(worker_id);
      if (!view) return toolError(unknownWorkerMessage(worker_id, known()));
      const fallback = (staleReason: string | null) =>
        result(WorkerStatusOutput, {
          worker: workerEntry(view),
          source: "heartbeat",
          stale: staleReason !== null,
          staleReason,
          status: null,
          metrics: view.metrics,
          metricsAgeMs: view.lastHeartbeatAgeMs,
        });
      if (!fresh) return fallback(null);
      if (!view.connected) {
        const why = view.reasons.map((r) => r.message).join("; ");
        return fallback(`worker is not connected (${view.state}${why ? `: ${why}` : ""})`);
      }
      try {
        const status = await manager.request(worker_id, "status.snapshot", {}, {
          timeoutMs: options.requestTimeoutMs,
          signal: extra.signal,
        });
        const now = registry.get(worker_id) ?? view;
        return result(WorkerStatusOutput, {
          worker: workerEntry(now),
          source: "worker",
          stale: false,
          staleReason: null,
          status,
          metrics: now.metrics,
          metricsAgeMs: now.lastHeartbeatAgeMs,
        });
      } catch (err) {
        return fallback(`the worker did not answer: ${errorMessage(err)}`);
      }
    },
  );

  server.registerTool(
    "get_all_workers_status",
    {
      title: "Get every worker's status",
      description:
        "Counts by state, and each worker's latest metrics (CPU, memory, fullest disk, battery, network, temperature), " +
        "problem workers first, a page at a time (pass nextCursor back as cursor). fresh=true asks every worker on " +
        "the page now, in parallel, reports progress as answers arrive, and returns partial results with an error " +
        "for each worker that did not answer.",
      inputSchema: {
        fresh: z.boolean().default(false).describe("ask each worker now instead of using heartbeats"),
        state: stateFilter,
        label: labelFilter,
        limit: limit(100).describe("workers per page, 1–1000"),
        cursor: z.string().max(200).optional().describe("nextCursor from the previous page"),
      },
      outputSchema: AllStatusOutput.shape,
      annotations: { title: "Get every worker's status", ...readOnly },
    },
    async ({ fresh, state, label, limit, cursor }, extra) => {
      const matching = filterWorkers(registry.list(), { state, label });
      const paged = page(matching, limit, cursor);
      if ("error" in paged) return toolError(paged.error);
      const entries: StatusEntry[] = paged.items.map((v: WorkerView) => ({
        id: v.id,
        hostname: v.hostname,
        state: v.state,
        reasons: v.reasons,
        connected: v.connected,
        lastHeartbeatAgeMs: v.lastHeartbeatAgeMs,
        metrics: v.metrics,
        status: null,
        error: null,
      }));
      if (fresh) {
        const token = extra._meta?.progressToken;
        let done = 0;
        let lastProgressAt = -Infinity;
        await pool(entries, options.freshConcurrency ?? 64, extra.signal, async (entry) => {
          if (!entry.connected) {
            entry.error = `not connected (${entry.state})`;
          } else {
            try {
              entry.status = await manager.request(entry.id, "status.snapshot", {}, {
                timeoutMs: options.requestTimeoutMs,
                signal: extra.signal,
              });
            } catch (err) {
              entry.error = errorMessage(err);
            }
          }
          done++;
          // The last answer is announced by the result itself. A progress sent just before it can reach the
          // client in the same read; the SDK client then handles the result first and reports the progress as
          // one for an unknown request.
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
        // The same holds for a progress sent just before the last answer came in: the result follows it at once.
        // A short pause lets the client read the progress on its own first.
        const sinceProgress = performance.now() - lastProgressAt;
        if (sinceProgress < PROGRESS_GAP_MS) await new Promise((resolve) => setTimeout(resolve, PROGRESS_GAP_MS - sinceProgress));
      }
      return result(AllStatusOutput, { counts: countStates(matching), workers: entries, nextCursor: paged.nextCursor });
    },
  );

  server.registerTool(
    "get_fleet_summary",
    {
      title: "Fleet summary",
      description:
        "The fleet at a glance: counts by state, connected workers, total CPU cores and memory, the workers under " +
        "most resource pressure, and the most recent health transitions.",
      inputSchema: {},
      outputSchema: FleetSummaryOutput.shape,
      annotations: { title: "Fleet summary", ...readOnly },
    },
    async () => {
      const views = registry.list();
      const connected = views.filter((v) => v.connected);
      const pressured = connected
        .map((v) => ({ v, score: pressureScore(v) }))
        .filter((x): x is { v: WorkerView; score: number } => x.score !== null)
        .sort((a, b) => b.score - a.score)
        .slice(0, 5);
      return result(FleetSummaryOutput, {
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
          disk: v.metrics?.disk ?? null,
        })),
        recentTransitions: registry.events({ limit: 10 }).map(eventOut),
      });
    },
  );

  server.registerTool(
    "get_worker_events",
    {
      title: "Health transitions",
      description:
        "Health transitions (joined, degraded, unhealthy, recovered, offline) with their time and reasons, newest " +
        "last. Filter by worker and by time: since is an ISO time or a duration back from now such as 15m or 2h.",
      inputSchema: {
        worker_id: workerId.optional(),
        since: z.string().max(64).optional().describe('ISO time, or a duration back from now: "15m", "2h", "1d"'),
        limit: limit(50).describe("at most this many events, the newest, 1–1000"),
      },
      outputSchema: EventsOutput.shape,
      annotations: { title: "Health transitions", ...readOnly },
    },
    async ({ worker_id, since, limit }) => {
      if (worker_id !== undefined && !registry.get(worker_id)) return toolError(unknownWorkerMessage(worker_id, known()));
      let events = registry.events({ worker: worker_id });
      if (since !== undefined) {
        const from = parseSince(since, Date.now());
        if (typeof from === "string") return toolError(from);
        events = events.filter((e) => e.at >= from);
      }
      return result(EventsOutput, { events: events.slice(-limit).map(eventOut), hasMore: events.length > limit });
    },
  );
}
