import type { MetricsSummary } from "../protocol/metrics.js";
import { formatDuration } from "../config/duration.js";

export const HEALTH_STATES = ["healthy", "degraded", "unhealthy", "offline"] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

export type ReasonCode =
  | "heartbeat_late"
  | "heartbeats_missed"
  | "connection_lost"
  | "goodbye"
  | "memory_pressure"
  | "disk_pressure"
  | "battery_low"
  | "collector_errors"
  | "reconnect_flapping"
  | "cert_expiring"
  | "not_seen_since_start"
  | "identity_conflict"
  // Said of an event rather than of a state: why a worker came back, left the live set, or left the registry.
  | "returned_after_restart"
  | "revoked"
  | "forgotten"
  | "expired_offline";

/** `code` is stable and decides whether anything changed; `message` is for people and may carry figures. */
export interface Reason {
  code: ReasonCode;
  message: string;
}

export interface HealthPolicy {
  heartbeatIntervalMs: number;
  /** Unhealthy once this many intervals pass with no heartbeat. */
  missedHeartbeats: number;
  /** Memory or a filesystem used above this percent is a warning; 0 turns these warnings off. */
  pressurePercent: number;
  /** This many sessions opened within `flapWindowMs` is a warning. */
  flapSessions: number;
  flapWindowMs: number;
  /** A certificate that expires within this is a warning. */
  certWarnMs: number;
  /** Sessions of one id replacing each other this many times within `duplicateWindowMs`: two hosts share it. */
  duplicateReplacements: number;
  duplicateWindowMs: number;
}

export const DEFAULT_POLICY: HealthPolicy = {
  heartbeatIntervalMs: 1000,
  missedHeartbeats: 3,
  pressurePercent: 95,
  flapSessions: 4,
  flapWindowMs: 5 * 60_000,
  certWarnMs: 14 * 86_400_000,
  duplicateReplacements: 3,
  duplicateWindowMs: 60_000,
};

export const BATTERY_LOW_PERCENT = 10;

/** The unhealthy bound: no heartbeat for this long while connected. */
export function missedBoundMs(policy: HealthPolicy): number {
  return policy.heartbeatIntervalMs * policy.missedHeartbeats;
}

/** A heartbeat is late (degraded) past this much silence: one whole beat missing; jitter within one is not. */
export function lateBoundMs(policy: HealthPolicy): number {
  return 2 * policy.heartbeatIntervalMs;
}

/**
 * How close to its expiry a certificate is a warning: `certWarnMs`, or a quarter of the certificate's life if that
 * is shorter. An enrolled certificate is renewed at about two thirds of its life, so a renewing worker never
 * reaches the warning; one whose renewal is overdue does. A hand-issued year-long one keeps the configured bound.
 */
export function certWarnThresholdMs(policy: HealthPolicy, lifetimeMs: number | null | undefined): number {
  return lifetimeMs !== null && lifetimeMs !== undefined && lifetimeMs > 0 ? Math.min(policy.certWarnMs, lifetimeMs / 4) : policy.certWarnMs;
}

/** What is known about a connected worker at one instant. */
export interface ConnectedFacts {
  /** Time since the last sign of life (hello or heartbeat), or since a manager stall ended if that is later. */
  silenceMs: number;
  metrics: MetricsSummary | null;
  sessionsInFlapWindow: number;
  /** Milliseconds until the client certificate expires; null if unknown. */
  certExpiresInMs: number | null;
  /** The client certificate's whole life (notAfter − notBefore); null if unknown. */
  certLifetimeMs?: number | null;
  /** Recent replacements of one session of this id by another, and the addresses they came from. */
  replacementsInWindow: number;
  replacingAddresses: string[];
}

/**
 * The health of a connected worker (docs/architecture.md, fixed decision 4). A worker that is not connected is `unhealthy` or `offline`
 * according to how it left, which only the registry knows; this function never returns those for that reason.
 */
export function assessConnected(facts: ConnectedFacts, policy: HealthPolicy): { state: HealthState; reasons: Reason[] } {
  const bound = missedBoundMs(policy);
  if (facts.silenceMs > bound) {
    return {
      state: "unhealthy",
      reasons: [
        {
          code: "heartbeats_missed",
          message: `heartbeats missed: none for ${formatDuration(facts.silenceMs)} (bound ${formatDuration(bound)})`,
        },
      ],
    };
  }
  const reasons: Reason[] = [];
  if (facts.silenceMs > lateBoundMs(policy)) {
    reasons.push({ code: "heartbeat_late", message: `heartbeat late: none for ${formatDuration(facts.silenceMs)}` });
  }
  const m = facts.metrics;
  if (m && policy.pressurePercent > 0) {
    if (m.mem !== null && m.mem > policy.pressurePercent) {
      reasons.push({ code: "memory_pressure", message: `memory pressure: ${m.mem.toFixed(0)}% used` });
    }
    if (m.disk && m.disk.used > policy.pressurePercent) {
      reasons.push({ code: "disk_pressure", message: `disk pressure: ${m.disk.mount} ${m.disk.used.toFixed(0)}% used` });
    }
  }
  if (m?.battery && !m.battery.charging && m.battery.percent < BATTERY_LOW_PERCENT) {
    reasons.push({ code: "battery_low", message: `battery low: ${m.battery.percent.toFixed(0)}% and discharging` });
  }
  if (m && m.errors.length > 0) {
    // Collector and code only: the detail is the worker's own text, which the manager logs and never shows.
    reasons.push({ code: "collector_errors", message: `collector errors: ${m.errors.map((e) => `${e.collector} ${e.code}`).join(", ")}` });
  }
  if (facts.sessionsInFlapWindow >= policy.flapSessions) {
    reasons.push({
      code: "reconnect_flapping",
      message: `reconnect flapping: ${facts.sessionsInFlapWindow} sessions in ${formatDuration(policy.flapWindowMs)}`,
    });
  }
  if (facts.replacementsInWindow >= policy.duplicateReplacements) {
    reasons.push({
      code: "identity_conflict",
      message:
        `identity in use by two hosts: sessions replaced each other ${facts.replacementsInWindow} times in ` +
        `${formatDuration(policy.duplicateWindowMs)} (from ${facts.replacingAddresses.join(", ") || "unknown"})`,
    });
  }
  if (facts.certExpiresInMs !== null && facts.certExpiresInMs < certWarnThresholdMs(policy, facts.certLifetimeMs)) {
    reasons.push({
      code: "cert_expiring",
      message:
        facts.certExpiresInMs <= 0
          ? "certificate expired"
          : `certificate expires in ${formatDuration(facts.certExpiresInMs)}`,
    });
  }
  return { state: reasons.length > 0 ? "degraded" : "healthy", reasons };
}

export function sameReasons(a: readonly Reason[], b: readonly Reason[]): boolean {
  if (a.length !== b.length) return false;
  // A handful of reasons at most, compared on every heartbeat: loops that allocate nothing.
  for (let i = 0; i < b.length; i++) {
    let found = false;
    for (let j = 0; j < a.length && !found; j++) found = a[j]!.code === b[i]!.code;
    if (!found) return false;
  }
  return true;
}

/** With the same codes (see sameReasons): whether the messages, and so the figures they carry, are the same too. */
export function sameMessages(a: readonly Reason[], b: readonly Reason[]): boolean {
  for (let i = 0; i < b.length; i++) {
    let found = false;
    for (let j = 0; j < a.length && !found; j++) found = a[j]!.code === b[i]!.code && a[j]!.message === b[i]!.message;
    if (!found) return false;
  }
  return true;
}
