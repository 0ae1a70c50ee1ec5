import { cpuSeconds } from "./procs.js";
import { percentile, type Scrape } from "./report.js";

/**
 * GET /metrics `times` times, one after another as Prometheus would (never two at once): the wall time of each
 * (request to last byte), the body's size, and the manager's CPU for all of them.
 */
export async function measureScrapes(port: number, pid: number, times: number): Promise<Scrape> {
  const ms: number[] = [];
  let bytes = 0;
  let samples = 0;
  const cpu0 = cpuSeconds(pid);
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    const body = await res.text();
    ms.push(performance.now() - start);
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    bytes = Buffer.byteLength(body);
    samples = body.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
  }
  const cpuMs = ((cpuSeconds(pid) - cpu0) * 1000) / times;
  ms.sort((a, b) => a - b);
  return { calls: times, p50: percentile(ms, 50), max: ms.at(-1)!, bytes, samples, cpuMs };
}
