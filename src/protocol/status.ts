import { z } from "zod";
import { COLLECTOR_NAMES, LIMITS } from "./metrics.js";
import { displayText, ErrorCode, Hostname, tokenText } from "./text.js";

// Every figure within a physical range, every string in a narrow class (docs/protocol.md): a full status goes to
// the assistant as it is, so what it may hold is decided here.

/** What a full status is built from: its strings' classes and its figures' ranges. */
interface StatusKit {
  datetime: z.ZodType<string>;
  hostname: z.ZodType<string>;
  token: (max: number) => z.ZodType<string>;
  /** OS and CPU names: printable, short (a CPU's brand string is at most 48 characters by its own definition). */
  name: (max: number) => z.ZodType<string>;
  code: z.ZodType<string>;
  range: (min: number, max: number) => z.ZodNumber;
}

const WIRE: StatusKit = {
  datetime: z.iso.datetime(),
  hostname: Hostname,
  token: tokenText,
  name: displayText,
  code: ErrorCode,
  range: (min, max) => z.number().min(min).max(max),
};

/**
 * The same fields and types without the patterns and ranges, for the MCP tools' declared output: the wire schema
 * has already held every string to its form and every figure to its range, and, repeated in both tools that
 * return a status, they took about 5 KB of the 32 KB that `tools/list` may use.
 */
const PLAIN: StatusKit = {
  datetime: z.string(),
  hostname: z.string(),
  token: () => z.string(),
  name: () => z.string(),
  code: z.string(),
  range: () => z.number(),
};

/** Where an entry of `errors` comes from: a collector, or the snapshot itself (lists shortened to fit a frame). */
export const STATUS_ERROR_SOURCES = [...COLLECTOR_NAMES, "snapshot"] as const;

function fullStatusOf(t: StatusKit) {
  const name = t.name(48).nullable();
  const token = t.token(64).nullable();
  const bounded = (min: number, max: number) => t.range(min, max).nullable();
  const bytes = bounded(0, 2 ** 60);
  const rate = bounded(0, LIMITS.rate);
  const percent = bounded(0, 100);
  const celsius = t.range(LIMITS.tempMin, LIMITS.tempMax);
  const count = t.range(0, LIMITS.cores).int().nullable();
  return z.object({
    collectedAt: t.datetime,
    hostname: t.hostname,
    os: z
      .object({
        platform: token,
        distro: name,
        release: name,
        kernel: token,
        arch: token,
      })
      .nullable(),
    cpu: z
      .object({
        manufacturer: name,
        brand: name,
        cores: count,
        physicalCores: count,
        speedGHz: bounded(0, 100),
      })
      .nullable(),
    load: z
      .object({
        currentPercent: percent,
        perCore: z.array(t.range(0, 100)).max(4096),
        average: z.array(t.range(0, LIMITS.load)).length(3),
      })
      .nullable(),
    memory: z
      .object({
        total: bytes,
        used: bytes,
        active: bytes,
        available: bytes,
        swapTotal: bytes,
        swapUsed: bytes,
      })
      .nullable(),
    filesystems: z
      .array(
        z.object({
          fs: t.token(256),
          type: token,
          mount: t.token(256),
          size: bytes,
          used: bytes,
          usePercent: percent,
        }),
      )
      .max(512)
      .nullable(),
    network: z
      .array(
        z.object({
          iface: t.token(64),
          operstate: token,
          ip4: token,
          ip6: token,
          mac: token,
          rxBytesPerSec: rate,
          txBytesPerSec: rate,
        }),
      )
      .max(512)
      .nullable(),
    battery: z
      .object({
        hasBattery: z.boolean(),
        percent: percent,
        isCharging: z.boolean().nullable(),
        acConnected: z.boolean().nullable(),
      })
      .nullable(),
    temperatures: z
      .object({
        main: celsius.nullable(),
        max: celsius.nullable(),
        cores: z.array(celsius).max(4096),
      })
      .nullable(),
    uptimeSec: bounded(0, LIMITS.uptime),
    /** What failed, by source and code; the agent logs the detail itself. */
    errors: z.array(z.object({ source: z.enum(STATUS_ERROR_SOURCES), code: t.code })).max(64),
  });
}

/** The worker's full status, the answer to the `status.snapshot` request. */
export const FullStatus = fullStatusOf(WIRE);
/** A full status as the tools declare it (see PLAIN). */
export const FullStatusShape = fullStatusOf(PLAIN);
export type FullStatus = z.infer<typeof FullStatus>;
