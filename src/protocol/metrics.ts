import { z } from "zod";

const percent = z.number().min(0).max(100);
const nonNegative = z.number().min(0);

/**
 * The compact summary that rides on every heartbeat (~200–300 bytes of JSON). Every field may be null: a host
 * without a battery or sensors, or a collector that failed, leaves a gap rather than a made-up number.
 */
export const MetricsSummary = z.object({
  /** Total CPU busy percent over the last collection period. */
  cpu: percent.nullable(),
  /** 1-minute load average. */
  load1: nonNegative.nullable(),
  cores: z.number().int().min(0).nullable(),
  /** Memory in use (excluding caches), percent of total. */
  mem: percent.nullable(),
  memTotal: nonNegative.nullable(),
  swap: percent.nullable(),
  /** The fullest filesystem. */
  disk: z.object({ mount: z.string().max(256), used: percent }).nullable(),
  battery: z.object({ percent: percent, charging: z.boolean() }).nullable(),
  /** Bytes per second summed over non-loopback interfaces. */
  net: z.object({ rx: nonNegative, tx: nonNegative }).nullable(),
  /** Hottest sensor, degrees Celsius. */
  temp: z.number().min(-100).max(300).nullable(),
  uptime: nonNegative.nullable(),
  /** Collectors that failed or timed out in the last cycle, as `name: message`. */
  errors: z.array(z.string().max(200)).max(16),
});
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
  if (!sameStrings(kept.errors, next.errors)) kept.errors = next.errors.length === 0 ? [] : [...next.errors];
  return kept;
}

/** A copy that shares nothing mutable with `m`. */
export function copyMetrics(m: MetricsSummary): MetricsSummary {
  return {
    ...m,
    disk: m.disk && { ...m.disk },
    battery: m.battery && { ...m.battery },
    net: m.net && { ...m.net },
    errors: [...m.errors],
  };
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
