// Preloaded (node --import) into the manager by scripts/bench/fan-out.ts when it is asked for a memory breakdown:
// samples process.memoryUsage() and V8's heap spaces every 25 ms and, on SIGWINCH, writes the current figures and
// each one's highest since the last report to the file named by MCP_FLEET_MEM_PROBE (then starts over). Plain
// JavaScript, so the manager loads it from dist/ without tsx.
import { writeFileSync } from "node:fs";
import { setInterval } from "node:timers";
import { Session } from "node:inspector";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

const file = process.env.MCP_FLEET_MEM_PROBE;
if (file) {
  const read = () => {
    const m = process.memoryUsage();
    const out = { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
    for (const s of getHeapSpaceStatistics()) {
      out[`${s.space_name}.size`] = s.space_size;
      out[`${s.space_name}.used`] = s.space_used_size;
    }
    return out;
  };
  // Collections since the last report, by kind: count and milliseconds.
  let gcs = {};
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: "minor", [constants.NODE_PERFORMANCE_GC_MAJOR]: "major", [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental", [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb" };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = kinds[e.detail?.kind] ?? String(e.detail?.kind);
      const g = (gcs[kind] ??= { count: 0, ms: 0 });
      g.count++;
      g.ms += e.duration;
    }
  }).observe({ entryTypes: ["gc"] });
  let peak = read();
  let atPeakRss = peak;
  setInterval(() => {
    const now = read();
    for (const [k, v] of Object.entries(now)) peak[k] = Math.max(peak[k] ?? 0, v);
    if (now.rss >= atPeakRss.rss) atPeakRss = now;
  }, 25).unref();
  // With MCP_FLEET_MEM_SAMPLE: V8's sampling heap profiler runs from one report to the next, counting what a
  // scavenge did not collect (what was still live at the end, and what only a full collection freed: garbage
  // that was promoted), written beside the report as a .heapprofile (Chrome DevTools opens it).
  const session = process.env.MCP_FLEET_MEM_SAMPLE ? new Session() : null;
  let sampling = false;
  if (session) {
    session.connect();
    session.post("HeapProfiler.enable");
  }
  process.on("SIGWINCH", () => {
    if (session && !sampling) {
      // "all": every allocation, collected or not (where the scavenges' work comes from).
      const all = process.env.MCP_FLEET_MEM_SAMPLE === "all";
      session.post("HeapProfiler.startSampling", { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: all });
      sampling = true;
    } else if (session) {
      session.post("HeapProfiler.stopSampling", (err, r) => writeFileSync(`${file}.heapprofile`, JSON.stringify(err ?? r.profile)));
      sampling = false;
    }
    const now = read();
    writeFileSync(file, JSON.stringify({ now, peak, atPeakRss, gcs }));
    gcs = {};
    peak = now;
    atPeakRss = now;
  });
}
