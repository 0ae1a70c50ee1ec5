import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import { MetricsSummary } from "../protocol/metrics.js";
import { FullStatus } from "../protocol/status.js";

// Output schemas of the tools. Results are parsed through these before they are returned, so structuredContent
// always matches exactly (the SDK client rejects extra keys).

export const StateEnum = z.enum(HEALTH_STATES);
export const ReasonOut = z.object({ code: z.string(), message: z.string() });

export const WorkerEntry = z.object({
  id: z.string(),
  hostname: z.string(),
  state: StateEnum,
  reasons: z.array(ReasonOut),
  connected: z.boolean(),
  lastHeartbeatAgeMs: z.number().nullable().describe("milliseconds since the last heartbeat; null when not connected"),
  connectedSince: z.string().nullable().describe("ISO time the current session began"),
  firstSeen: z.string(),
  lastSeen: z.string(),
  agentVersion: z.string(),
  labels: z.record(z.string(), z.string()),
  addresses: z.array(z.string()),
});
export type WorkerEntry = z.infer<typeof WorkerEntry>;

export const Counts = z.object({
  healthy: z.number().int(),
  degraded: z.number().int(),
  unhealthy: z.number().int(),
  offline: z.number().int(),
  total: z.number().int(),
});
export type Counts = z.infer<typeof Counts>;

export const EventOut = z.object({
  seq: z.number().int(),
  at: z.string(),
  worker: z.string(),
  from: StateEnum.nullable(),
  to: StateEnum,
  reasons: z.array(ReasonOut),
});
export type EventOut = z.infer<typeof EventOut>;

export const UnverifiedEntry = z.object({
  id: z.string(),
  hostname: z.string(),
  addresses: z.array(z.string()),
  fleet: z.enum(["this", "other"]).describe("whether its announcement names this manager's fleet"),
  lastHeardAgeMs: z.number(),
  hint: z.string(),
});
export type UnverifiedEntry = z.infer<typeof UnverifiedEntry>;

export const ListWorkersOutput = z.object({
  workers: z.array(WorkerEntry),
  total: z.number().int(),
  unverified: z
    .array(UnverifiedEntry)
    .describe("hosts announcing the agent on mDNS that are not connected: not verified, not part of the registry"),
});

export const WorkerStatusOutput = z.object({
  worker: WorkerEntry,
  source: z.enum(["worker", "heartbeat"]).describe("worker: asked just now; heartbeat: the last heartbeat's summary"),
  stale: z.boolean(),
  staleReason: z.string().nullable(),
  status: FullStatus.nullable(),
  metrics: MetricsSummary.nullable(),
  metricsAgeMs: z.number().nullable(),
});

export const StatusEntry = z.object({
  id: z.string(),
  hostname: z.string(),
  state: StateEnum,
  reasons: z.array(ReasonOut),
  connected: z.boolean(),
  lastHeartbeatAgeMs: z.number().nullable(),
  metrics: MetricsSummary.nullable(),
  status: FullStatus.nullable(),
  error: z.string().nullable(),
});
export type StatusEntry = z.infer<typeof StatusEntry>;

export const AllStatusOutput = z.object({
  counts: Counts,
  workers: z.array(StatusEntry),
  nextCursor: z.string().nullable(),
});

export const PressureEntry = z.object({
  id: z.string(),
  state: StateEnum,
  score: z.number().describe("the highest of CPU, memory and fullest-disk use, percent"),
  cpu: z.number().nullable(),
  mem: z.number().nullable(),
  disk: z.object({ mount: z.string(), used: z.number() }).nullable(),
});

export const FleetSummaryOutput = z.object({
  counts: Counts,
  connected: z.number().int(),
  totalCores: z.number().int(),
  totalMemoryBytes: z.number(),
  underPressure: z.array(PressureEntry),
  recentTransitions: z.array(EventOut),
});

export const EventsOutput = z.object({ events: z.array(EventOut), hasMore: z.boolean() });
