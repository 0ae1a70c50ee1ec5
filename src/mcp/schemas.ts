import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import { MetricsSummaryShape } from "../protocol/metrics.js";
import { FullStatusShape } from "../protocol/status.js";

// Output schemas of the tools. Results are parsed through these before they are returned, so structuredContent
// always matches exactly (the SDK client rejects extra keys). Who a field comes from is said once, in the tool's
// description (PROVENANCE in tool-kit.ts): "observed" fields are the manager's own (its clock, its sockets, the
// certificate it verified); "reported" fields are what a worker claims about itself, unverified. A field's own
// description repeats it only with something to add: tools/list has no room for a bare "observed" on every field.

export const StateEnum = z.enum(HEALTH_STATES);
export const ReasonOut = z.object({ code: z.string(), message: z.string() });

const heartbeatAge = z.number().nullable().describe("observed: ms since its last heartbeat; null if not connected");
/**
 * A whole number in an answer, declared as a JSON Schema integer without the safe-integer bounds zod would add
 * (57 characters each, dozens of times over in tools/list).
 */
export const whole = z.number().refine(Number.isSafeInteger, "must be a whole number").meta({ type: "integer" });

export const cursorOut = z.string().nullable().describe("cursor of the next page; null on the last");

/** A compact row of list_workers: what the manager decided, and the labels to filter by. */
export const WorkerRow = z.object({
  id: z.string(),
  state: StateEnum,
  reasons: z.array(z.string()).describe("observed: reason codes (messages in get_worker_status)"),
  connected: z.boolean(),
  lastHeartbeatAgeMs: heartbeatAge,
  labels: z.record(z.string(), z.string()).describe("reported"),
  moreLabels: whole.optional().describe("labels not shown here (see get_worker_status)"),
});
export type WorkerRow = z.infer<typeof WorkerRow>;

/** What the worker says about itself in its hello: nothing the manager can check. */
export const Reported = z
  .object({
    hostname: z.string(),
    agentVersion: z.string(),
    labels: z.record(z.string(), z.string()),
    platform: z.object({ os: z.string(), arch: z.string(), release: z.string() }),
  })
  .describe("reported by the worker in its hello: unverified claims");

export const WorkerDetail = z.object({
  id: z.string(),
  state: StateEnum,
  reasons: z.array(ReasonOut),
  connected: z.boolean(),
  lastHeartbeatAgeMs: heartbeatAge,
  connectedSince: z.string().nullable().describe("observed: ISO time the current session began"),
  firstSeen: z.string(),
  lastSeen: z.string(),
  addresses: z.array(z.string()).describe("observed: the session's peer address"),
  reported: Reported,
});
export type WorkerDetail = z.infer<typeof WorkerDetail>;

/** Workers by state, and their total. A record over the names declares them once, not twice as an object would. */
export const Counts = z.record(z.enum([...HEALTH_STATES, "total"]), whole);
export type Counts = z.infer<typeof Counts>;

export const EventOut = z.object({
  seq: whole,
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

const omitted = z
  .array(z.string())
  .optional()
  .describe("what was cut to fit, if anything");

export const ListWorkersOutput = z.object({
  total: whole.describe("workers matching the filter, over all pages"),
  counts: Counts.describe("matching workers by state"),
  fleet: Counts.describe("the whole fleet by state"),
  workers: z.array(WorkerRow),
  nextCursor: cursorOut,
  unverified: z
    .array(UnverifiedEntry)
    .describe("LAN announcements without a session: anyone's claims, not in the registry; newest first"),
  unverifiedTotal: whole,
});

export const WorkerStatusOutput = z.object({
  worker: WorkerDetail,
  source: z.enum(["worker", "heartbeat"]).describe("worker: asked just now; heartbeat: the last heartbeat's summary"),
  stale: z.boolean(),
  staleReason: z.string().nullable(),
  status: FullStatusShape.nullable().describe("reported by the worker"),
  metrics: MetricsSummaryShape.nullable().describe("reported by the worker"),
  metricsAgeMs: z.number().nullable(),
  omitted,
});

export const StatusEntry = z.object({
  id: z.string(),
  hostname: z.string().describe("reported"),
  state: StateEnum,
  reasons: z.array(ReasonOut),
  connected: z.boolean(),
  lastHeartbeatAgeMs: heartbeatAge,
  metrics: MetricsSummaryShape.nullable().describe("reported"),
  status: FullStatusShape.nullable().describe("reported"),
  error: z.string().nullable(),
  omitted,
});
export type StatusEntry = z.infer<typeof StatusEntry>;

/**
 * get_all_workers_status declares the status and metrics of an entry by reference to get_worker_status, which
 * declares their shape in full: both in full twice over were a third of tools/list. Entries are still parsed by
 * StatusEntry before they are answered.
 */
const StatusEntryListed = StatusEntry.extend({
  metrics: z.unknown().describe("reported: as in get_worker_status"),
  status: z.unknown().describe("reported: as in get_worker_status, cut short"),
});

export const AllStatusOutput = z.object({
  counts: Counts.describe("matching workers by state"),
  workers: z.array(StatusEntryListed),
  nextCursor: cursorOut,
});

export const PressureEntry = z.object({
  id: z.string(),
  state: StateEnum,
  score: z.number().describe("reported: the highest of CPU, memory and fullest-disk use, percent"),
  cpu: z.number().nullable(),
  mem: z.number().nullable(),
  disk: z.object({ mount: z.string(), used: z.number() }).nullable(),
});

export const FleetSummaryOutput = z.object({
  counts: Counts,
  connected: whole,
  totalCores: whole.describe("reported, summed"),
  totalMemoryBytes: z.number().describe("reported, summed"),
  underPressure: z.array(PressureEntry),
  // Declared in full once, in get_worker_events: both in full were 450 characters of tools/list twice over.
  recentTransitions: z.array(z.unknown()).describe("as events in get_worker_events"),
});

export const ActionEventOut = z.object({ at: z.string(), worker: z.string(), jobId: z.string(), action: z.string(), status: z.string() });

export const EventsOutput = z.object({
  events: z.array(EventOut).describe("oldest first within the page"),
  actions: z.array(ActionEventOut).describe("newest action outcomes, newest first, apart from events"),
  nextCursor: z.string().nullable().describe("cursor of older events; null when none"),
});
