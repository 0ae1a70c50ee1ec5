/**
 * The fan-out part of `npm run bench` alone, for working on its memory: a manager (from dist/) and N simulated
 * workers, then the no-op action on all of them, `--repeat` times. Prints the bench's figures and, from the
 * manager's own memory probe (mem-probe.mjs), process.memoryUsage() and V8's heap spaces before the job, at its
 * peak and after a full collection.
 *
 *   npx tsx scripts/bench/fan-out-only.ts --n 10000 [--out /tmp/bench-fan] [--repeat 2] [--node-args "--trace-gc"]
 *     [--snapshot]   also writes a heap snapshot of the manager after the (last) job, into --out
 *     [--sample promoted|all]  V8's sampling heap profile of each job, written to --out as
 *                    mem-probe-<pid>.json.heapprofile: what was promoted (live at its end, or freed by a full
 *                    collection only), or every allocation
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fanOut } from "./fan-out.js";
import { ensureBenchCerts } from "./fleet-certs.js";
import { BenchManager } from "./manager.js";
import { steadyFleet } from "./steady-fleet.js";
import { epochNow, freePort, rssBytes, sleep } from "./procs.js";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "10000" },
    out: { type: "string", default: "bench-results" },
    repeat: { type: "string", default: "1" },
    "node-args": { type: "string", default: "" },
    snapshot: { type: "boolean", default: false },
    sample: { type: "string" },
  },
});
const n = Number(values.n);
const repeat = Number(values.repeat);
const out = values.out;
const say = (s: string) => process.stderr.write(`fan-out: ${s}\n`);

const probeFile = join(out, `mem-probe-${process.pid}.json`);
process.env.MCP_FLEET_MEM_PROBE = probeFile;
if (values.sample) process.env.MCP_FLEET_MEM_SAMPLE = values.sample;
const nodeArgs = [
  "--expose-gc",
  "--import", new URL("./gc-on-signal.mjs", import.meta.url).href,
  "--import", new URL("./mem-probe.mjs", import.meta.url).href,
  ...(values.snapshot ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${out}`] : []),
  ...values["node-args"].split(" ").filter(Boolean),
];

type Figures = Record<string, number>;
async function probe(pid: number): Promise<{ now: Figures; peak: Figures; atPeakRss: Figures; gcs: Record<string, { count: number; ms: number }> }> {
  rmSync(probeFile, { force: true });
  process.kill(pid, "SIGWINCH");
  const end = epochNow() + 10_000;
  while (!existsSync(probeFile)) {
    if (epochNow() > end) throw new Error("the manager's memory probe did not answer");
    await sleep(50);
  }
  await sleep(50);
  return JSON.parse(readFileSync(probeFile, "utf8")) as Awaited<ReturnType<typeof probe>>;
}

const MB = (b: number) => (b / 2 ** 20).toFixed(1);
function table(rows: Array<[string, Figures]>): string {
  const keys = ["rss", "heapTotal", "heapUsed", "external", "arrayBuffers", "new_space.size", "old_space.size", "old_space.used", "large_object_space.size", "code_space.size"];
  const head = `| MB | ${rows.map(([name]) => name).join(" | ")} |\n|---|${rows.map(() => "---").join("|")}|\n`;
  return head + keys.map((k) => `| ${k} | ${rows.map(([, f]) => MB(f[k] ?? 0)).join(" | ")} |`).join("\n");
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  const certs = await ensureBenchCerts(join(out, "fleet"), n, say);
  const stateFile = join(out, `state-fan-${n}.json`);
  rmSync(stateFile, { force: true });
  rmSync(`${stateFile}.ticket-keys`, { force: true });
  const port = await freePort();
  const manager = await BenchManager.start(certs, port, stateFile, nodeArgs);
  const sims = await steadyFleet(manager, certs, port, n);
  try {
    for (let i = 0; i < repeat; i++) {
      process.kill(manager.pid, "SIGURG");
      await sleep(1000);
      const before = await probe(manager.pid);
      const result = await fanOut(manager, n, say);
      // fanOut ends with a full collection and a 1 s wait: `now` is after it, `peak` is through the job.
      const after = await probe(manager.pid);
      say(`run ${i + 1}: ${(result.seconds).toFixed(1)} s, manager CPU ${result.managerCpuS.toFixed(1)} s, RSS growth peak ${MB(result.rssGrowth)} MB, after GC ${MB(result.rssRetained)} MB, unhealthy ${result.unhealthy}, progress ${result.progressNotifications}`);
      process.stdout.write(`\nrun ${i + 1}\n${table([["before", before.now], ["peak (each)", after.peak], ["at peak RSS", after.atPeakRss], ["after GC", after.now]])}\n`);
      process.stdout.write(`growth (MB): rss ${MB(after.atPeakRss.rss! - before.now.rss!)}, heapUsed ${MB(after.peak.heapUsed! - before.now.heapUsed!)}, after GC heapUsed ${MB(after.now.heapUsed! - before.now.heapUsed!)}; manager RSS now ${MB(rssBytes(manager.pid))}\ncollections during the job: ${JSON.stringify(after.gcs)}\n`);
      await sleep(3000);
    }
    if (values.snapshot) {
      process.kill(manager.pid, "SIGUSR2");
      say(`heap snapshot requested into ${out}`);
      await sleep(Math.max(10_000, n * 2));
    }
  } finally {
    for (const s of sims) await s.stop();
    await manager.stop();
  }
}

main().catch((err: unknown) => {
  say(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
