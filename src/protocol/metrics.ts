import { z } from "zod";
import { PLAIN_KIT, WIRE_KIT, type TextKit } from "./text.js";

/**
 * Generous real-world maxima. A figure outside them is not a big machine but a broken or hostile worker, and its
 * heartbeat is refused: one worker must not be able to push a fleet-wide sum past what the tools can report
 * (65,536 cores × 100,000 workers is still a safe integer; docs/protocol.md has the arithmetic).
 */
export const LIMITS = {
  cores: 65_536,
  /** Bytes of memory: 1 PiB. (Byte counts in a full status, filesystems among them, may go to 2^60.) */
  bytes: 2 ** 50,
  /** Bytes per second: 2^40 is about 8.8 Tbit/s. */
  rate: 2 ** 40,
  load: 1_000_000,
  /** A hundred years, in seconds. */
  uptime: 3_155_760_000,
  tempMin: -100,
  tempMax: 300,
} as const;

/** The systeminformation calls an agent makes, by name: the only names a collector error may carry. */
export const COLLECTOR_NAMES = [
  "osInfo",
  "cpu",
  "currentLoad",
  "mem",
  "fsSize",
  "battery",
  "networkStats",
  "cpuTemperature",
  "time",
  "networkInterfaces",
] as const;
export type CollectorName = (typeof COLLECTOR_NAMES)[number];

function collectorErrorOf(t: TextKit) {
  return z.object({
    collector: t.names(COLLECTOR_NAMES, "must be one of the agent's collector names"),
    code: t.code,
    detail: t.detail.optional(),
  });
}

/** One collector that failed: which, and a code. `detail` is for the operator's log and is not kept. */
export const CollectorError = collectorErrorOf(WIRE_KIT);
export type CollectorError = z.infer<typeof CollectorError>;

/**
 * The compact summary that rides on every heartbeat (~200–300 bytes of JSON). Every field may be null: a host
 * without a battery or sensors, or a collector that failed, leaves a gap rather than a made-up number.
 */
function metricsSummaryOf(t: TextKit) {
  const percent = t.range(0, 100);
  const nonNegative = (max: number) => t.range(0, max);
  return z.object({
    /** Total CPU busy percent over the last collection period. */
    cpu: percent.nullable(),
    /** 1-minute load average. */
    load1: nonNegative(LIMITS.load).nullable(),
    cores: t.count(1, LIMITS.cores).nullable(),
    /** Memory in use (excluding caches), percent of total. */
    mem: percent.nullable(),
    /** Bytes. */
    memTotal: t.count(0, LIMITS.bytes).nullable(),
    swap: percent.nullable(),
    /** The fullest filesystem; its mount point in token characters (others as %XX). */
    disk: z.object({ mount: t.token(256), used: percent }).nullable(),
    battery: z.object({ percent: percent, charging: z.boolean() }).nullable(),
    /** Bytes per second summed over non-loopback interfaces. */
    net: z.object({ rx: nonNegative(LIMITS.rate), tx: nonNegative(LIMITS.rate) }).nullable(),
    /** Hottest sensor, degrees Celsius. */
    temp: t.range(LIMITS.tempMin, LIMITS.tempMax).nullable(),
    /** Seconds. */
    uptime: nonNegative(LIMITS.uptime).nullable(),
    /** Collectors that failed or timed out in the last cycle. */
    errors: z.array(collectorErrorOf(t)).max(COLLECTOR_NAMES.length),
  });
}

export const MetricsSummary = metricsSummaryOf(WIRE_KIT);
/** A summary as the tools declare it (see TextKit). */
export const MetricsSummaryShape = metricsSummaryOf(PLAIN_KIT);
export type MetricsSummary = z.infer<typeof MetricsSummary>;

export const EMPTY_METRICS: MetricsSummary = {
  cpu: null,
  load1: null,
  cores: null,
  mem: null,
  memTotal: null,
  swap: null,
  disk: null,
  battery: null,
  net: null,
  temp: null,
  uptime: null,
  errors: [],
};

/**
 * Folds a heartbeat's summary into the one a worker's record keeps, reusing the kept objects and strings, and
 * returns what to keep. Keeping each parsed summary instead would let it live a whole interval, long enough to be
 * promoted to V8's old generation and collected there: at 10,000 workers that was most of the manager's GC work.
 * The kept summary is mutable, so readers that hold on to it take a copy (`copyMetrics`).
 */
export function absorbMetrics(kept: MetricsSummary | null, next: MetricsSummary): MetricsSummary {
  if (!kept) return copyMetrics(next);
  kept.cpu = next.cpu;
  kept.load1 = next.load1;
  kept.cores = next.cores;
  kept.mem = next.mem;
  kept.memTotal = next.memTotal;
  kept.swap = next.swap;
  if (!next.disk) kept.disk = null;
  else if (!kept.disk) kept.disk = { ...next.disk };
  else {
    if (kept.disk.mount !== next.disk.mount) kept.disk.mount = next.disk.mount;
    kept.disk.used = next.disk.used;
  }
  if (!next.battery) kept.battery = null;
  else if (!kept.battery) kept.battery = { ...next.battery };
  else {
    kept.battery.percent = next.battery.percent;
    kept.battery.charging = next.battery.charging;
  }
  if (!next.net) kept.net = null;
  else if (!kept.net) kept.net = { ...next.net };
  else {
    kept.net.rx = next.net.rx;
    kept.net.tx = next.net.tx;
  }
  kept.temp = next.temp;
  kept.uptime = next.uptime;
  if (!sameErrors(kept.errors, next.errors)) kept.errors = next.errors.length === 0 ? [] : next.errors.map(withoutDetail);
  return kept;
}

/** What the manager keeps of a collector error: the detail is worker text, logged and then dropped. */
function withoutDetail(e: CollectorError): CollectorError {
  return { collector: e.collector, code: e.code };
}

/** A copy that shares nothing mutable with `m`. */
export function copyMetrics(m: MetricsSummary): MetricsSummary {
  return {
    ...m,
    disk: m.disk && { ...m.disk },
    battery: m.battery && { ...m.battery },
    net: m.net && { ...m.net },
    errors: m.errors.map(withoutDetail),
  };
}

function sameErrors(a: readonly CollectorError[], b: readonly CollectorError[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.collector !== b[i]!.collector || a[i]!.code !== b[i]!.code) return false;
  return true;
}
