import { z } from "zod";
import { COLLECTOR_NAMES, LIMITS } from "./metrics.js";
import { PLAIN_KIT, WIRE_KIT, type TextKit } from "./text.js";

// Every figure within a physical range, every string in a narrow class (docs/protocol.md): a full status goes to
// the assistant as it is, so what it may hold is decided here.

/** Where an entry of `errors` comes from: a collector, or the snapshot itself (lists shortened to fit a frame). */
export const STATUS_ERROR_SOURCES = [...COLLECTOR_NAMES, "snapshot"] as const;

/** A full status in `t`'s classes. Names are 48 at most: a CPU's brand string is that long at most by its own definition. */
function fullStatusOf(t: TextKit) {
  const name = t.name(48).nullable();
  const token = t.token(64).nullable();
  const bounded = (min: number, max: number) => t.range(min, max).nullable();
  const bytes = bounded(0, 2 ** 60);
  const rate = bounded(0, LIMITS.rate);
  const percent = bounded(0, 100);
  const celsius = t.range(LIMITS.tempMin, LIMITS.tempMax);
  const count = t.count(0, LIMITS.cores).nullable();
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
    errors: z.array(z.object({ source: t.names(STATUS_ERROR_SOURCES), code: t.code })).max(64),
  });
}

/** The worker's full status, the answer to the `status.snapshot` request. */
export const FullStatus = fullStatusOf(WIRE_KIT);
/** A full status as the tools declare it (see TextKit). */
export const FullStatusShape = fullStatusOf(PLAIN_KIT);
export type FullStatus = z.infer<typeof FullStatus>;
