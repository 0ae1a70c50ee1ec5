/**
 * The /metrics part of `npm run bench` alone: a manager (from dist/) with its metrics listener, N simulated
 * workers all healthy, then GET /metrics `--scrapes` times one after another, with and without --metrics-hosts.
 *
 *   npx tsx scripts/bench/metrics-only.ts --n 10000 [--out /tmp/bench-metrics] [--scrapes 20] [--hosts]
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureBenchCerts } from "./fleet-certs.js";
import { BenchManager } from "./manager.js";
import { steadyFleet } from "./steady-fleet.js";
import { freePort } from "./procs.js";
import { measureScrapes } from "./scrape.js";

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
  const sims = await steadyFleet(manager, certs, port, n);
  try {
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
