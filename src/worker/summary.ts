import type { Systeminformation as SI } from "systeminformation";
import { LIMITS, type CollectorError, type MetricsSummary } from "../protocol/metrics.js";
import type { FullStatus } from "../protocol/status.js";
import { toDisplay, toHostname, toToken } from "../protocol/text.js";

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

/** A figure the wire accepts: past the protocol's maximum it is a misreading, and sent as unknown. */
function upTo(x: unknown, max: number): number | null {
  const n = num(x);
  return n === null || n > max ? null : n;
}

function whole(x: unknown, max: number): number | null {
  const n = upTo(x, max);
  return n === null ? null : Math.round(n);
}

function pct(x: unknown): number | null {
  const n = num(x);
  return n === null ? null : Math.min(100, Math.round(n * 10) / 10);
}

function celsius(x: unknown): number | null {
  const n = upTo(x, LIMITS.tempMax);
  return n === null ? null : Math.round(n * 10) / 10;
}

/** OS and CPU names: printable, at most 48 characters. */
function name(x: unknown): string | null {
  return typeof x === "string" && x.length > 0 ? toDisplay(x, 48) : null;
}

/** Short identifiers (kernel release, addresses, states): token characters, at most 64. */
function token(x: unknown): string | null {
  return typeof x === "string" && x.length > 0 ? toToken(x, 64) : null;
}

/** Cores in use by the protocol: at least one, at most its maximum. */
function cores(x: unknown): number | null {
  const n = whole(x, LIMITS.cores);
  return n === null || n < 1 ? null : n;
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
  return rates.length === 0 ? null : whole(rates.reduce((a, b) => a + b, 0), LIMITS.rate);
}

export function summarize(r: Readings, loadavg1: number, errors: CollectorError[]): MetricsSummary {
  const fullest = realFilesystems(r.fsSize).reduce<SI.FsSizeData | null>(
    (best, f) => (best === null || (num(f.use) ?? 0) > (num(best.use) ?? 0) ? f : best),
    null,
  );
  const nets = externalInterfaces(r.networkStats);
  const rx = sumRate(nets, "rx_sec");
  const tx = sumRate(nets, "tx_sec");
  const temp = r.cpuTemperature ? (celsius(r.cpuTemperature.max) ?? celsius(r.cpuTemperature.main)) : null;
  const load1 = upTo(loadavg1, LIMITS.load);
  return {
    cpu: pct(r.currentLoad?.currentLoad),
    load1: load1 === null ? null : Math.round(load1 * 100) / 100,
    cores: cores(r.cpu?.cores) ?? (r.currentLoad ? cores(r.currentLoad.cpus.length) : null),
    mem: memUsedPercent(r.mem),
    memTotal: whole(r.mem?.total, LIMITS.bytes),
    swap: r.mem && num(r.mem.swaptotal) ? pct((r.mem.swapused / r.mem.swaptotal) * 100) : null,
    disk: fullest ? { mount: toToken(String(fullest.mount), 256), used: pct(fullest.use) ?? 0 } : null,
    battery:
      r.battery?.hasBattery && pct(r.battery.percent) !== null
        ? { percent: pct(r.battery.percent)!, charging: Boolean(r.battery.isCharging) }
        : null,
    net: rx !== null && tx !== null ? { rx, tx } : null,
    temp,
    uptime: upTo(r.time?.uptime, LIMITS.uptime),
    errors,
  };
}

export function fullStatus(
  r: Readings,
  context: { hostname: string; loadavg: number[]; collectedAt: Date; errors: FullStatus["errors"] },
): FullStatus {
  const ifaces = new Map((r.networkInterfaces ?? []).map((i) => [i.iface, i]));
  const stats = new Map((r.networkStats ?? []).map((s) => [s.iface, s]));
  const names = [...new Set([...ifaces.keys(), ...stats.keys()])];
  return {
    collectedAt: context.collectedAt.toISOString(),
    hostname: toHostname(context.hostname, "localhost"),
    os: r.osInfo
      ? {
          platform: token(r.osInfo.platform),
          distro: name(r.osInfo.distro),
          release: name(r.osInfo.release),
          kernel: token(r.osInfo.kernel),
          arch: token(r.osInfo.arch),
        }
      : null,
    cpu: r.cpu
      ? {
          manufacturer: name(r.cpu.manufacturer),
          brand: name(r.cpu.brand),
          cores: whole(r.cpu.cores, LIMITS.cores),
          physicalCores: whole(r.cpu.physicalCores, LIMITS.cores),
          speedGHz: upTo(r.cpu.speed, 100),
        }
      : null,
    load: r.currentLoad
      ? {
          currentPercent: pct(r.currentLoad.currentLoad),
          perCore: r.currentLoad.cpus.slice(0, 4096).map((c) => pct(c.load) ?? 0),
          average: [0, 1, 2].map((i) => Math.round((upTo(context.loadavg[i], LIMITS.load) ?? 0) * 100) / 100),
        }
      : null,
    memory: r.mem
      ? {
          total: upTo(r.mem.total, 2 ** 60),
          used: upTo(r.mem.used, 2 ** 60),
          active: upTo(r.mem.active, 2 ** 60),
          available: upTo(r.mem.available, 2 ** 60),
          swapTotal: upTo(r.mem.swaptotal, 2 ** 60),
          swapUsed: upTo(r.mem.swapused, 2 ** 60),
        }
      : null,
    filesystems: r.fsSize
      ? realFilesystems(r.fsSize).slice(0, 512).map((f) => ({
          fs: toToken(String(f.fs), 256),
          type: token(f.type),
          mount: toToken(String(f.mount), 256),
          size: upTo(f.size, 2 ** 60),
          used: upTo(f.used, 2 ** 60),
          usePercent: pct(f.use),
        }))
      : null,
    network:
      names.length > 0
        ? names.slice(0, 512).map((iface) => {
            const i = ifaces.get(iface);
            const s = stats.get(iface);
            return {
              iface: toToken(iface, 64),
              operstate: token(i?.operstate ?? s?.operstate),
              ip4: token(i?.ip4),
              ip6: token(i?.ip6),
              mac: token(i?.mac),
              rxBytesPerSec: s ? upTo(s.rx_sec, LIMITS.rate) : null,
              txBytesPerSec: s ? upTo(s.tx_sec, LIMITS.rate) : null,
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
          main: celsius(r.cpuTemperature.main),
          max: celsius(r.cpuTemperature.max),
          cores: (r.cpuTemperature.cores ?? []).slice(0, 4096).map(celsius).filter((v): v is number => v !== null),
        }
      : null,
    uptimeSec: upTo(r.time?.uptime, LIMITS.uptime),
    errors: context.errors.slice(0, 64),
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
  // TRUNCATED: the lists were shortened to fit the frame limit.
  s.errors = [...s.errors, { source: "snapshot", code: "TRUNCATED" }];
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
