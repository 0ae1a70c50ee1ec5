import { z } from "zod";
import { COLLECTOR_NAMES, LIMITS } from "./metrics.js";
import { displayText, ErrorCode, Hostname, tokenText } from "./text.js";

// Every figure within a physical range, every string in a narrow class (docs/protocol.md): a full status goes to
// the assistant as it is, so what it may hold is decided here.
const bounded = (min: number, max: number) => z.number().min(min).max(max).nullable();
const bytes = bounded(0, 2 ** 60);
const rate = bounded(0, LIMITS.rate);
const percent = bounded(0, 100);
const celsius = z.number().min(LIMITS.tempMin).max(LIMITS.tempMax);
const count = z.number().int().min(0).max(LIMITS.cores).nullable();
/** OS and CPU names: printable, short (a CPU's brand string is at most 48 characters by its own definition). */
const name = displayText(48).nullable();
const token = tokenText(64).nullable();

/** Where an entry of `errors` comes from: a collector, or the snapshot itself (lists shortened to fit a frame). */
export const STATUS_ERROR_SOURCES = [...COLLECTOR_NAMES, "snapshot"] as const;

/** The worker's full status, the answer to the `status.snapshot` request. */
export const FullStatus = z.object({
  collectedAt: z.iso.datetime(),
  hostname: Hostname,
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
      perCore: z.array(z.number().min(0).max(100)).max(4096),
      average: z.array(z.number().min(0).max(LIMITS.load)).length(3),
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
        fs: tokenText(256),
        type: token,
        mount: tokenText(256),
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
        iface: tokenText(64),
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
  errors: z.array(z.object({ source: z.enum(STATUS_ERROR_SOURCES), code: ErrorCode })).max(64),
});
export type FullStatus = z.infer<typeof FullStatus>;
