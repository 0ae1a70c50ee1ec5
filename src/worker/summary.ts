import type { Systeminformation as SI } from "systeminformation";
import type { MetricsSummary } from "../protocol/metrics.js";
import type { FullStatus } from "../protocol/status.js";

/** The latest successful answer of each collector; absent when it never answered or its answer went stale. */
export interface Readings {
  osInfo?: SI.OsData;
  cpu?: SI.CpuData;
  currentLoad?: SI.CurrentLoadData;
  mem?: SI.MemData;
  fsSize?: SI.FsSizeData[];
  battery?: SI.BatteryData;
  networkStats?: SI.NetworkStatsData[];
  cpuTemperature?: SI.CpuTemperatureData;
  time?: SI.TimeData;
  networkInterfaces?: SI.NetworkInterfacesData[];
}

/** systeminformation reports "unknown" as null, -1 or NaN depending on the call and the platform. */
function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : null;
}

function pct(x: unknown): number | null {
  const n = num(x);
  return n === null ? null : Math.min(100, Math.round(n * 10) / 10);
}

function text(x: unknown): string | null {
  return typeof x === "string" && x.length > 0 ? x.slice(0, 512) : null;
}

// Pseudo and image filesystems are always "full" or meaningless; they would hide the disk that matters.
const IGNORED_FS_TYPES = new Set(["tmpfs", "devtmpfs", "squashfs", "iso9660", "udf", "ramfs", "efivarfs"]);

function realFilesystems(list: SI.FsSizeData[] | undefined): SI.FsSizeData[] {
  return (list ?? []).filter((f) => !IGNORED_FS_TYPES.has(f.type) && f.rw !== false && num(f.size));
}

function externalInterfaces(list: SI.NetworkStatsData[] | undefined): SI.NetworkStatsData[] {
  return (list ?? []).filter((n) => n.iface !== "lo");
}

function memUsedPercent(m: SI.MemData | undefined): number | null {
  if (!m || !num(m.total)) return null;
  const available = num(m.available) ?? num(m.free);
  return available === null ? null : pct(((m.total - available) / m.total) * 100);
}

function sumRate(list: SI.NetworkStatsData[], key: "rx_sec" | "tx_sec"): number | null {
  const rates = list.map((n) => num(n[key])).filter((v): v is number => v !== null);
  return rates.length === 0 ? null : Math.round(rates.reduce((a, b) => a + b, 0));
}

export function summarize(r: Readings, loadavg1: number, errors: string[]): MetricsSummary {
  const fullest = realFilesystems(r.fsSize).reduce<SI.FsSizeData | null>(
    (best, f) => (best === null || (num(f.use) ?? 0) > (num(best.use) ?? 0) ? f : best),
    null,
  );
  const nets = externalInterfaces(r.networkStats);
  const rx = sumRate(nets, "rx_sec");
  const tx = sumRate(nets, "tx_sec");
  const temp = r.cpuTemperature ? (num(r.cpuTemperature.max) ?? num(r.cpuTemperature.main)) : null;
  return {
    cpu: pct(r.currentLoad?.currentLoad),
    load1: num(loadavg1) === null ? null : Math.round(loadavg1 * 100) / 100,
    cores: num(r.cpu?.cores) ?? (r.currentLoad ? r.currentLoad.cpus.length : null),
    mem: memUsedPercent(r.mem),
    memTotal: num(r.mem?.total),
    swap: r.mem && num(r.mem.swaptotal) ? pct((r.mem.swapused / r.mem.swaptotal) * 100) : null,
    disk: fullest ? { mount: fullest.mount.slice(0, 256), used: pct(fullest.use) ?? 0 } : null,
    battery:
      r.battery?.hasBattery && pct(r.battery.percent) !== null
        ? { percent: pct(r.battery.percent)!, charging: Boolean(r.battery.isCharging) }
        : null,
    net: rx !== null && tx !== null ? { rx, tx } : null,
    temp: temp === null ? null : Math.round(temp * 10) / 10,
    uptime: num(r.time?.uptime),
    errors: errors.slice(0, 16).map((e) => e.slice(0, 200)),
  };
}

export function fullStatus(
  r: Readings,
  context: { hostname: string; loadavg: number[]; collectedAt: Date; errors: Array<{ source: string; message: string }> },
): FullStatus {
  const ifaces = new Map((r.networkInterfaces ?? []).map((i) => [i.iface, i]));
  const stats = new Map((r.networkStats ?? []).map((s) => [s.iface, s]));
  const names = [...new Set([...ifaces.keys(), ...stats.keys()])];
  return {
    collectedAt: context.collectedAt.toISOString(),
    hostname: context.hostname,
    os: r.osInfo
      ? {
          platform: text(r.osInfo.platform),
          distro: text(r.osInfo.distro),
          release: text(r.osInfo.release),
          kernel: text(r.osInfo.kernel),
          arch: text(r.osInfo.arch),
        }
      : null,
    cpu: r.cpu
      ? {
          manufacturer: text(r.cpu.manufacturer),
          brand: text(r.cpu.brand),
          cores: num(r.cpu.cores),
          physicalCores: num(r.cpu.physicalCores),
          speedGHz: num(r.cpu.speed),
        }
      : null,
    load: r.currentLoad
      ? {
          currentPercent: pct(r.currentLoad.currentLoad),
          perCore: r.currentLoad.cpus.map((c) => pct(c.load) ?? 0),
          average: [0, 1, 2].map((i) => Math.round((context.loadavg[i] ?? 0) * 100) / 100),
        }
      : null,
    memory: r.mem
      ? {
          total: num(r.mem.total),
          used: num(r.mem.used),
          active: num(r.mem.active),
          available: num(r.mem.available),
          swapTotal: num(r.mem.swaptotal),
          swapUsed: num(r.mem.swapused),
        }
      : null,
    filesystems: r.fsSize
      ? realFilesystems(r.fsSize).slice(0, 512).map((f) => ({
          fs: String(f.fs).slice(0, 512),
          type: text(f.type),
          mount: String(f.mount).slice(0, 512),
          size: num(f.size),
          used: num(f.used),
          usePercent: pct(f.use),
        }))
      : null,
    network:
      names.length > 0
        ? names.slice(0, 512).map((name) => {
            const i = ifaces.get(name);
            const s = stats.get(name);
            return {
              iface: name.slice(0, 64),
              operstate: text(i?.operstate ?? s?.operstate),
              ip4: text(i?.ip4),
              ip6: text(i?.ip6),
              mac: text(i?.mac),
              rxBytesPerSec: s ? num(s.rx_sec) : null,
              txBytesPerSec: s ? num(s.tx_sec) : null,
            };
          })
        : null,
    battery: r.battery
      ? {
          hasBattery: Boolean(r.battery.hasBattery),
          percent: r.battery.hasBattery ? pct(r.battery.percent) : null,
          isCharging: r.battery.hasBattery ? Boolean(r.battery.isCharging) : null,
          acConnected: typeof r.battery.acConnected === "boolean" ? r.battery.acConnected : null,
        }
      : null,
    temperatures: r.cpuTemperature
      ? {
          main: num(r.cpuTemperature.main),
          max: num(r.cpuTemperature.max),
          cores: (r.cpuTemperature.cores ?? []).map(num).filter((v): v is number => v !== null),
        }
      : null,
    uptimeSec: num(r.time?.uptime),
    errors: context.errors.slice(0, 64).map((e) => ({ source: e.source.slice(0, 64), message: e.message.slice(0, 500) })),
  };
}

/**
 * Keeps a full status within one frame: the manager closes a session whose frame is over the limit, and a host
 * with hundreds of mounts or interfaces must not lose its session for answering. The longest lists are halved
 * until it fits, and the answer says it was cut.
 */
export function fitStatus(status: FullStatus, maxBytes: number): FullStatus {
  const size = (s: FullStatus) => Buffer.byteLength(JSON.stringify(s));
  if (size(status) <= maxBytes) return status;
  const s: FullStatus = structuredClone(status);
  s.errors = [...s.errors, { source: "snapshot", message: `lists shortened to fit the ${Math.round(maxBytes / 1024)} KiB frame limit` }];
  for (let round = 0; round < 20 && size(s) > maxBytes; round++) {
    const lists: Array<{ len: number; cut: () => void }> = [
      { len: s.filesystems?.length ?? 0, cut: () => (s.filesystems = s.filesystems!.slice(0, Math.floor(s.filesystems!.length / 2))) },
      { len: s.network?.length ?? 0, cut: () => (s.network = s.network!.slice(0, Math.floor(s.network!.length / 2))) },
      { len: s.load?.perCore.length ?? 0, cut: () => (s.load!.perCore = s.load!.perCore.slice(0, Math.floor(s.load!.perCore.length / 2))) },
      { len: s.temperatures?.cores.length ?? 0, cut: () => (s.temperatures!.cores = s.temperatures!.cores.slice(0, Math.floor(s.temperatures!.cores.length / 2))) },
    ];
    const longest = lists.sort((a, b) => b.len - a.len)[0]!;
    if (longest.len === 0) break;
    longest.cut();
  }
  return s;
}
