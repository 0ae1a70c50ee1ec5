/**
 * The /metrics part of `npm run bench` alone: a manager (from dist/) with its metrics listener, N simulated
 * workers all healthy, then GET /metrics `--scrapes` times one after another, with and without --metrics-hosts.
 *
 *   npx tsx scripts/bench/metrics-only.ts --n 10000 [--out /tmp/bench-metrics] [--scrapes 20] [--hosts]
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pacedInterval } from "../../src/core/pace.js";
import { ensureBenchCerts } from "./fleet-certs.js";
import { BenchManager } from "./manager.js";
import { epochNow, freePort, Simulator, sleep, sumStats } from "./procs.js";
import { measureScrapes } from "./scrape.js";
import type { SimStats } from "./sim-protocol.js";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    out: { type: "string", default: "bench-results" },
    scrapes: { type: "string", default: "20" },
    hosts: { type: "boolean", default: false },
  },
});
const n = Number(values.n);
const say = (s: string) => process.stderr.write(`metrics: ${s}\n`);

async function main(): Promise<void> {
  mkdirSync(values.out, { recursive: true });
  const certs = await ensureBenchCerts(join(values.out, "fleet"), n, say);
  const stateFile = join(values.out, `state-metrics-${n}.json`);
  rmSync(stateFile, { force: true });
  rmSync(`${stateFile}.ticket-keys`, { force: true });
  const port = await freePort();
  const metricsPort = await freePort();
  const manager = await BenchManager.start(certs, port, stateFile, [], { port: metricsPort, hosts: values.hosts });
  const sims = Array.from({ length: n >= 2000 ? 2 : 1 }, () => new Simulator());
  try {
    await Promise.all(sims.map((s) => s.ready));
    const per = Math.ceil(n / sims.length);
    await Promise.all(
      sims.map((s, i) =>
        s.call({ op: "start", url: `wss://127.0.0.1:${port}/worker`, mode: "manager", intervalMs: 0, resume: true, certFile: certs.workersFile, from: i * per, to: Math.min(n, (i + 1) * per), concurrency: 48 }),
      ),
    );
    const interval = pacedInterval({ baseMs: 1000, budgetPerSecond: 2000, connected: n });
    const end = epochNow() + 180_000;
    for (;;) {
      const counts = await manager.counts();
      const s = sumStats(await Promise.all(sims.map((x) => x.stats()))) as SimStats;
      if (counts.healthy === n && s.intervals[interval] === n) break;
      if (epochNow() > end) throw new Error(`not all healthy: ${JSON.stringify(counts)}`);
      await sleep(500);
    }
    await sleep(Math.max(3000, 2 * interval));
    const scrape = await measureScrapes(metricsPort, manager.pid, Number(values.scrapes));
    process.stdout.write(`N = ${n}${values.hosts ? ", --metrics-hosts" : ""}: ${JSON.stringify(scrape)}\n`);
  } finally {
    for (const s of sims) await s.stop();
    await manager.stop();
  }
}

main().catch((err: unknown) => {
  say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
