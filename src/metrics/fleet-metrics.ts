import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { HEALTH_STATES, type HealthState } from "../core/health.js";
import { INVOCATION_STATUSES, JOB_STATUSES, type InvocationStatus, type JobStatus } from "../jobs/api.js";
import { REFUSAL_CAUSES, type RefusalCause } from "./causes.js";
import { PREFIX } from "./names.js";
import { WorkerSeries } from "./worker-series.js";
import {
  NOTIFICATION_KINDS,
  NOTIFICATION_OUTCOMES,
  type ManagerMetrics,
  type NotificationKind,
  type NotificationOutcome,
  type ScrapeSources,
  type ToolOutcome,
} from "./sink.js";

/** Tool calls are answered in milliseconds from the registry, or in seconds when workers are asked. */
const TOOL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const LINTED_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

export interface FleetMetricsOptions {
  /** Also each connected worker's latest heartbeat figures (--metrics-hosts). */
  hosts?: boolean;
  /** prom-client's process and Node.js metrics (off in unit tests, whose output should be the fleet's only). */
  defaults?: boolean;
}

/**
 * The manager's Prometheus metrics (docs/metrics.md). What the registry knows is read when scraped; what only the
 * manager's parts see as it happens (refusals, tool calls, job ends, notifications) comes in through the
 * ManagerMetrics sink as counters.
 */
export class FleetMetrics implements ManagerMetrics {
  readonly registry = new Registry();
  private sources: ScrapeSources | null = null;
  private readonly refusals: Counter<"cause">;
  private readonly jobs: Counter<"status">;
  private readonly invocations: Counter<"status">;
  private readonly tools: Histogram<"tool" | "outcome">;
  private readonly notifications: Counter<"kind" | "outcome">;
  private readonly perWorker: WorkerSeries;

  constructor(options: FleetMetricsOptions = {}) {
    const registers = [this.registry];
    // collect() is called with the metric as `this`: the sources are reached through a closure.
    const sources = () => this.sources;
    new Gauge({
      name: `${PREFIX}workers`,
      help: "Workers in the registry, by health state",
      labelNames: ["state"],
      registers,
      collect() {
        const counts: Record<HealthState, number> = { healthy: 0, degraded: 0, unhealthy: 0, offline: 0 };
        sources()?.registry.forEachWorker((_id, state) => counts[state]++);
        for (const state of HEALTH_STATES) this.set({ state }, counts[state]);
      },
    });
    let counted = 0;
    new Counter({
      name: `${PREFIX}heartbeats_received_total`,
      help: "Heartbeats accepted from workers",
      registers,
      collect() {
        const total = sources()?.registry.heartbeatsReceived ?? 0;
        if (total > counted) this.inc(total - counted);
        counted = total;
      },
    });
    new Gauge({
      name: `${PREFIX}sessions_open`,
      help: "Worker sessions open, those still waiting for their hello among them",
      registers,
      collect() {
        this.set(sources()?.sessionsOpen() ?? 0);
      },
    });
    this.refusals = new Counter({
      name: `${PREFIX}refused_total`,
      help: "Connections and sessions the manager turned away or closed, by cause (close code names, TLS verdict groups)",
      labelNames: ["cause"],
      registers,
    });
    for (const cause of REFUSAL_CAUSES) this.refusals.inc({ cause }, 0);
    this.jobs = new Counter({ name: `${PREFIX}jobs_total`, help: "Jobs ended, by status", labelNames: ["status"], registers });
    for (const status of JOB_STATUSES) if (status !== "running") this.jobs.inc({ status }, 0);
    this.invocations = new Counter({ name: `${PREFIX}invocations_total`, help: "Action invocations ended, by status", labelNames: ["status"], registers });
    for (const status of INVOCATION_STATUSES) if (status !== "pending" && status !== "running") this.invocations.inc({ status }, 0);
    this.tools = new Histogram({
      name: `${PREFIX}tool_call_duration_seconds`,
      help: "MCP tool calls, by tool and outcome (error: an error result or a failure), and how long they took",
      labelNames: ["tool", "outcome"],
      buckets: TOOL_BUCKETS,
      registers,
    });
    this.notifications = new Counter({
      name: `${PREFIX}notifications_total`,
      help: "MCP notifications, by kind and outcome (coalesced: told together with others; dropped: no client; failed: the send failed)",
      labelNames: ["kind", "outcome"],
      registers,
    });
    for (const kind of NOTIFICATION_KINDS) for (const outcome of NOTIFICATION_OUTCOMES) this.notifications.inc({ kind, outcome }, 0);
    this.perWorker = new WorkerSeries(options.hosts ?? false);
    if (options.defaults ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters, which promtool (and Prometheus's naming rules) flag; the same counts by type
      // stay, as nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
      for (const name of LINTED_DEFAULTS) this.registry.removeSingleMetric(name);
    }
  }

  attach(sources: ScrapeSources): void {
    this.sources = sources;
  }

  refused(cause: RefusalCause): void {
    this.refusals.inc({ cause });
  }

  jobEnded(status: JobStatus): void {
    this.jobs.inc({ status });
  }

  invocationEnded(status: InvocationStatus): void {
    this.invocations.inc({ status });
  }

  toolCalled(tool: string, outcome: ToolOutcome, seconds: number): void {
    this.tools.observe({ tool, outcome }, seconds);
  }

  notification(kind: NotificationKind, outcome: NotificationOutcome): void {
    this.notifications.inc({ kind, outcome });
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    const body = await this.registry.metrics();
    const perWorker = this.sources ? this.perWorker.render(this.sources.registry) : "";
    return { body: perWorker ? `${body}\n${perWorker}` : body, contentType: this.registry.contentType };
  }
}
