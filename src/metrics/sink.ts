import type { Registry } from "../core/registry.js";
import type { InvocationStatus, JobStatus } from "../jobs/api.js";
import type { RefusalCause } from "./causes.js";

export type ToolOutcome = "ok" | "error";
export const NOTIFICATION_KINDS = ["transition", "resource"] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];
/** sent; coalesced (held and told together with others); dropped (no client connected); failed (the send failed). */
export const NOTIFICATION_OUTCOMES = ["sent", "coalesced", "dropped", "failed"] as const;
export type NotificationOutcome = (typeof NOTIFICATION_OUTCOMES)[number];

/** What the manager's parts can be read for at scrape time; handed over once, when the manager has started. */
export interface ScrapeSources {
  registry: Registry;
  /** Worker sessions open now, those still waiting for their hello among them. */
  sessionsOpen: () => number;
}

/**
 * Where the manager's parts report what only they see as it happens. An interface, so the parts stay free of
 * any metrics library and the default (NO_METRICS) costs a call that does nothing. Figures the registry already
 * holds (states, heartbeats, host figures) are not pushed here: they are read when scraped (`attach`).
 */
export interface ManagerMetrics {
  attach(sources: ScrapeSources): void;
  /** A connection or session the manager turned away or closed, by cause. */
  refused(cause: RefusalCause): void;
  jobEnded(status: JobStatus): void;
  invocationEnded(status: InvocationStatus): void;
  toolCalled(tool: string, outcome: ToolOutcome, seconds: number): void;
  notification(kind: NotificationKind, outcome: NotificationOutcome): void;
}

const nothing = () => {};

export const NO_METRICS: ManagerMetrics = {
  attach: nothing,
  refused: nothing,
  jobEnded: nothing,
  invocationEnded: nothing,
  toolCalled: nothing,
  notification: nothing,
};
