import type { MetricsSummary } from "../protocol/metrics.js";
import type { FullStatus } from "../protocol/status.js";
import { CAPS, clip } from "./answer-budget.js";

/** How much of a worker's full status an answer carries. */
export interface StatusCaps {
  /** Filesystems, network interfaces, collector errors. */
  list: number;
  /** Per-core loads and per-core temperatures. */
  numbers: number;
  /** Every string. */
  text: number;
}

/**
 * get_worker_status tries these in turn and keeps the first that fits the answer budget: a host with hundreds of
 * mounts and interfaces still answers, with the rest counted in `omitted`. The last is small enough for any worker.
 */
export const DETAIL_CAPS: readonly StatusCaps[] = [
  { list: 64, numbers: 512, text: 256 },
  { list: 16, numbers: 128, text: 96 },
  { list: 4, numbers: 16, text: 32 },
];

/** One entry of a get_all_workers_status page: a page holds many, so each gets less. */
export const PAGE_CAPS: StatusCaps = { list: 8, numbers: 64, text: 64 };

const clipOrNull = (s: string | null, max: number) => (s === null ? null : clip(s, max));

/** The first `max` of `items`; what is left out is counted in `omitted` under `name`. */
function head<T>(items: T[], max: number, name: string, omitted: string[]): T[] {
  if (items.length <= max) return items;
  omitted.push(`${name}: ${items.length - max} of ${items.length} not shown`);
  return items.slice(0, max);
}

/** `status` within `caps`, and what was left out; strings that were cut end with an ellipsis. */
export function capStatus(status: FullStatus, caps: StatusCaps): { status: FullStatus; omitted: string[] } {
  const omitted: string[] = [];
  const t = (s: string | null) => clipOrNull(s, caps.text);
  const s = status;
  const capped: FullStatus = {
    collectedAt: clip(s.collectedAt, 40),
    hostname: clip(s.hostname, CAPS.hostname),
    os: s.os && { platform: t(s.os.platform), distro: t(s.os.distro), release: t(s.os.release), kernel: t(s.os.kernel), arch: t(s.os.arch) },
    cpu: s.cpu && { ...s.cpu, manufacturer: t(s.cpu.manufacturer), brand: t(s.cpu.brand) },
    load: s.load && { ...s.load, perCore: head(s.load.perCore, caps.numbers, "status.load.perCore", omitted) },
    memory: s.memory,
    filesystems:
      s.filesystems &&
      head(s.filesystems, caps.list, "status.filesystems", omitted).map((f) => ({
        ...f,
        fs: clip(f.fs, caps.text),
        type: t(f.type),
        mount: clip(f.mount, caps.text),
      })),
    network:
      s.network &&
      head(s.network, caps.list, "status.network", omitted).map((n) => ({
        ...n,
        iface: clip(n.iface, caps.text),
        operstate: t(n.operstate),
        ip4: t(n.ip4),
        ip6: t(n.ip6),
        mac: t(n.mac),
      })),
    battery: s.battery,
    temperatures: s.temperatures && { ...s.temperatures, cores: head(s.temperatures.cores, caps.numbers, "status.temperatures.cores", omitted) },
    uptimeSec: s.uptimeSec,
    errors: head(s.errors, caps.list, "status.errors", omitted).map((e) => ({ ...e })),
  };
  return { status: capped, omitted };
}

/** A heartbeat's summary with its worker-written strings capped (the figures are bounded at the wire). */
export function capMetrics(m: MetricsSummary | null): MetricsSummary | null {
  if (!m) return null;
  return {
    ...m,
    disk: m.disk && { mount: clip(m.disk.mount, CAPS.text), used: m.disk.used },
    battery: m.battery && { ...m.battery },
    net: m.net && { ...m.net },
    errors: m.errors.map((e) => ({ ...e })),
  };
}
