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
