import { z } from "zod";

const num = z.number().nullable();
const str = z.string().max(512).nullable();

/** The worker's full status, the answer to the `status.snapshot` request. */
export const FullStatus = z.object({
  collectedAt: z.string(),
  hostname: z.string().max(253),
  os: z
    .object({
      platform: str,
      distro: str,
      release: str,
      kernel: str,
      arch: str,
    })
    .nullable(),
  cpu: z
    .object({
      manufacturer: str,
      brand: str,
      cores: num,
      physicalCores: num,
      speedGHz: num,
    })
    .nullable(),
  load: z
    .object({
      currentPercent: num,
      perCore: z.array(z.number()).max(4096),
      average: z.array(z.number()).length(3),
    })
    .nullable(),
  memory: z
    .object({
      total: num,
      used: num,
      active: num,
      available: num,
      swapTotal: num,
      swapUsed: num,
    })
    .nullable(),
  filesystems: z
    .array(
      z.object({
        fs: z.string().max(512),
        type: str,
        mount: z.string().max(512),
        size: num,
        used: num,
        usePercent: num,
      }),
    )
    .max(512)
    .nullable(),
  network: z
    .array(
      z.object({
        iface: z.string().max(64),
        operstate: str,
        ip4: str,
        ip6: str,
        mac: str,
        rxBytesPerSec: num,
        txBytesPerSec: num,
      }),
    )
    .max(512)
    .nullable(),
  battery: z
    .object({
      hasBattery: z.boolean(),
      percent: num,
      isCharging: z.boolean().nullable(),
      acConnected: z.boolean().nullable(),
    })
    .nullable(),
  temperatures: z
    .object({
      main: num,
      max: num,
      cores: z.array(z.number()).max(4096),
    })
    .nullable(),
  uptimeSec: num,
  errors: z.array(z.object({ source: z.string().max(64), message: z.string().max(500) })).max(64),
});
export type FullStatus = z.infer<typeof FullStatus>;
