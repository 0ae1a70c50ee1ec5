import type { CollectorName } from "../protocol/metrics.js";

export type { CollectorName };

/** The systeminformation calls the agent makes, by name; the thread runs them and the main side schedules them. */
export const STATIC_COLLECTORS = ["osInfo", "cpu"] as const satisfies readonly CollectorName[];
export const DYNAMIC_COLLECTORS = ["currentLoad", "mem", "fsSize", "battery", "networkStats", "cpuTemperature", "time"] as const satisfies readonly CollectorName[];
/** Only asked for a full snapshot: slow (~60 ms of blocking) and rarely changing. */
export const ON_DEMAND_COLLECTORS = ["networkInterfaces"] as const satisfies readonly CollectorName[];

export const ALL_COLLECTORS: readonly CollectorName[] = [...STATIC_COLLECTORS, ...DYNAMIC_COLLECTORS, ...ON_DEMAND_COLLECTORS];

/** Names to make hang forever, for tests of a hung collector (a stale NFS mount makes `df` do this). */
export const FAULT_HANG_ENV = "MCP_FLEET_FAULT_HANG_COLLECTOR";

export type ThreadRequest = { kind: "call"; id: number; name: CollectorName } | { kind: "ping"; id: number };
export type ThreadReply =
  | { kind: "result"; id: number; ok: true; value: unknown }
  | { kind: "result"; id: number; ok: false; error: string; code: string }
  | { kind: "pong"; id: number };
