import type { MetricsSummary } from "../protocol/metrics.js";

/** One host figure from a heartbeat summary: its metric name (after the prefix), help, and value or null (a gap). */
export interface HostFigure {
  name: string;
  help: string;
  of: (m: Readonly<MetricsSummary>) => number | null;
}

/** What --metrics-hosts exports per connected worker: figures the worker reports of itself, unverified. */
export const HOST_FIGURES: readonly HostFigure[] = [
  { name: "host_cpu_percent", help: "CPU busy percent over the worker's last collection period", of: (m) => m.cpu },
  { name: "host_load1", help: "1-minute load average", of: (m) => m.load1 },
  { name: "host_cores", help: "CPU cores", of: (m) => m.cores },
  { name: "host_memory_used_percent", help: "Memory in use (excluding caches), percent of total", of: (m) => m.mem },
  { name: "host_memory_total_bytes", help: "Memory in all", of: (m) => m.memTotal },
  { name: "host_swap_used_percent", help: "Swap in use, percent", of: (m) => m.swap },
  { name: "host_disk_used_percent", help: "Use of the fullest filesystem, percent", of: (m) => m.disk?.used ?? null },
  { name: "host_network_receive_bytes_per_second", help: "Bytes received per second over non-loopback interfaces", of: (m) => m.net?.rx ?? null },
  { name: "host_network_transmit_bytes_per_second", help: "Bytes sent per second over non-loopback interfaces", of: (m) => m.net?.tx ?? null },
  { name: "host_temperature_celsius", help: "Hottest sensor", of: (m) => m.temp },
  { name: "host_uptime_seconds", help: "Host uptime", of: (m) => m.uptime },
];
