/**
 * `npm run bench`: the manager against a simulated fleet and against the bare transport (see
 * docs/performance.md). Prints a markdown table and writes the figures as JSON.
 *
 * Everything runs on loopback; every phase has a deadline, and every process it starts is stopped at the end,
 * whatever happened.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus, totalmem, release } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { pacedInterval } from "../../src/core/pace.js";
import { ensureBenchCerts, type BenchCerts } from "./fleet-certs.js";
import { BenchManager } from "./manager.js";
import { daemonLatency } from "./daemon.js";
import { fanOut } from "./fan-out.js";
import { cpuSeconds, threadCpuSeconds, epochNow, freePort, openFileLimits, raisedLimit, rssBytes, Simulator, sleep, stealSeconds, sumStats } from "./procs.js";
import type { SimStats } from "./sim-protocol.js";
import { joinBench } from "./joins.js";
import { measureScrapes } from "./scrape.js";
import { percentile, renderJoinTable, renderTable, TARGETS, type AnswerSize, type JoinResult, type SizeResult, type SteadyState } from "./report.js";

const Options = z.object({
  sizes: z
    .string()
    .regex(/^\d+(,\d+)*$/, "--sizes is a comma-separated list of fleet sizes, e.g. 1000,10000")
    .transform((s) => s.split(",").map(Number))
    .refine((a) => a.every((n) => n >= 200 && n <= 100_000), "each size must be between 200 and 100000"),
  window: z.coerce.number().min(3, "--window is at least 3 (seconds)").max(300),
  calls: z.coerce.number().int().min(10, "--calls is at least 10").max(10_000),
  out: z.string().min(1),
  profile: z.string().min(1).optional(),
  perf: z.boolean(),
  joins: z.coerce.number().int().min(0).max(5000, "--joins is at most 5000"),
  joinsOnly: z.boolean(),
});

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,10000" },
    window: { type: "string", default: "60" },
    calls: { type: "string", default: "100" },
    out: { type: "string", default: "bench-results" },
    profile: { type: "string" },
    perf: { type: "boolean", default: false },
    joins: { type: "string", default: "200" },
    "joins-only": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write(
    "usage: npm run bench -- [--sizes 1000,10000] [--window 60] [--calls 100] [--out bench-results] [--profile dir] [--joins 200] [--joins-only]\n" +
      "  --sizes   fleet sizes to measure (capped by the open-file hard limit)\n" +
      "  --window  seconds over which CPU per heartbeat is measured\n" +
      "  --calls   MCP calls per tool for the latency percentiles\n" +
      "  --out     directory for the JSON results (and the cached bench certificates)\n" +
      "  --profile directory for V8 CPU profiles of each manager run and a heap snapshot at steady state\n" +
      "            (open both in Chrome DevTools; profiling slows the manager, so its figures are not comparable)\n" +
      "  --perf    record the manager's steady state with Linux perf (cpu-clock, call graphs) into --out\n" +
      "            (the JIT map it needs costs the manager ~10 µs per heartbeat: its CPU figures are then not comparable)\n" +
      "  --joins   hosts joining at once in the join phase, after the others (0: no join phase)\n" +
      "  --joins-only  only the join phase\n",
  );
  process.exit(0);
}
const parsed = Options.safeParse({ ...values, joinsOnly: values["joins-only"] });
if (!parsed.success) {
  process.stderr.write(`bench: ${parsed.error.issues.map((i) => i.message).join("; ")}\n`);
  process.exit(2);
}
const opts = parsed.data;
// With --profile: a CPU profile of each manager process, and a heap snapshot of the first one at steady state.
const GC_ON_SIGNAL = ["--expose-gc", "--import", new URL("./gc-on-signal.mjs", import.meta.url).href];
const managerNodeArgs = [
  ...GC_ON_SIGNAL,
  ...(opts.profile ? ["--cpu-prof", `--cpu-prof-dir=${opts.profile}`, "--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${opts.profile}`] : []),
  // perf needs a map from JIT addresses to JavaScript function names.
  ...(opts.perf ? ["--perf-basic-prof"] : []),
];

// The manager's defaults, which the bench runs at.
const BASE_INTERVAL_MS = 1000;
const BUDGET = 2000;
const MISSED = 3;
const KILLED_SAMPLES = 5;
/** GET /metrics this many times in the steady state, one after another. */
const SCRAPES = 10;
const FROZEN_SAMPLES = 3;

const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
const cleanups: Array<() => Promise<void> | void> = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch {
      // best effort: the next cleanup still runs
    }
  }
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => void cleanup().then(() => process.exit(130)));
}

async function withDeadline<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer!: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms)));
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function startSims(n: number, certs: BenchCerts, url: string, mode: "manager" | "baseline", intervalMs: number): Promise<{ sims: Simulator[]; openMs: number }> {
  const count = n >= 2000 ? 2 : 1;
  const sims = Array.from({ length: count }, () => new Simulator());
  for (const s of sims) cleanups.push(() => s.stop());
  await Promise.all(sims.map((s) => s.ready));
  const started = epochNow();
  const per = Math.ceil(n / count);
  const replies = await withDeadline(
    `opening ${n} sessions`,
    180_000,
    Promise.all(
      sims.map((s, i) =>
        s.call<{ op: "started"; ms: number; stats: SimStats }>({
          op: "start",
          url,
          mode,
          intervalMs,
          resume: true,
          certFile: certs.workersFile,
          from: i * per,
          to: Math.min(n, (i + 1) * per),
          concurrency: 48,
        }),
      ),
    ),
  );
  const opened = sumStats(replies.map((r) => r.stats));
  if (opened.open < n) say(`  only ${opened.open} of ${n} sessions opened: ${JSON.stringify(opened.failures)}`);
  return { sims, openMs: epochNow() - started };
}

async function allStats(sims: Simulator[], since?: number): Promise<SimStats> {
  return sumStats(await Promise.all(sims.map((s) => s.stats(since))));
}

/**
 * CPU seconds and heartbeats over a window of steady heartbeating; RSS sampled through it (median). The figure is
 * the whole window's mean, so periodic costs (a major GC, the 30 s full health check) are in it; the 10 s parts
 * of the window are reported too, to show how much one short window can vary.
 */
async function steadyState(
  pid: number,
  sims: Simulator[],
): Promise<SteadyState> {
  const s0 = await allStats(sims);
  const th0 = threadCpuSeconds(pid);
  const c0 = cpuSeconds(pid);
  const steal0 = stealSeconds();
  const t0 = epochNow();
  const rss: number[] = [];
  const partsUs: number[] = [];
  let part = { at: t0, cpu: c0, heartbeats: s0.heartbeatsSent };
  while (epochNow() - t0 < opts.window * 1000) {
    await sleep(1000);
    rss.push(rssBytes(pid));
    if (epochNow() - part.at >= 10_000) {
      const now = { at: epochNow(), cpu: cpuSeconds(pid), heartbeats: (await allStats(sims)).heartbeatsSent };
      partsUs.push(Math.round(((now.cpu - part.cpu) / (now.heartbeats - part.heartbeats)) * 1e7) / 10);
      part = now;
    }
  }
  const c1 = cpuSeconds(pid);
  const th1 = threadCpuSeconds(pid);
  const s1 = await allStats(sims);
  const heartbeats = s1.heartbeatsSent - s0.heartbeatsSent;
  const threadsUsPerHeartbeat = Object.fromEntries(
    Object.entries(th1)
      .map(([name, sec]) => [name, Math.round(((sec - (th0[name] ?? 0)) / heartbeats) * 1e7) / 10] as const)
      .filter(([, us]) => us > 0),
  );
  rss.sort((a, b) => a - b);
  return {
    windowAt: t0,
    cpuPerHeartbeatUs: ((c1 - c0) / heartbeats) * 1e6,
    partsUs,
    rss: percentile(rss, 50),
    heartbeats,
    cpuPercent: ((c1 - c0) / ((epochNow() - t0) / 1000)) * 100,
    threadsUsPerHeartbeat,
    stealS: stealSeconds() - steal0,
  };
}

/** RSS of a server that has settled after its start, read after a full collection (see gc-on-signal.mjs). */
async function idleRssBytes(pid: number): Promise<number> {
  await sleep(1000);
  process.kill(pid, "SIGURG");
  await sleep(500);
  return rssBytes(pid);
}

/** The bare baseline server in its own process, on `port` (0: any), with these TLS ticket keys (hex) or its own. */
async function startBaseline(certs: BenchCerts, port: number, ticketKeys?: string): Promise<{ pid: number; port: number; listeningAt: number; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL("./baseline-server.ts", import.meta.url));
  const argv = [process.execPath, ...GC_ON_SIGNAL, "--import", "tsx", script, certs.ca, certs.cert, certs.key, String(port), ...(ticketKeys ? [ticketKeys] : [])];
  const { command, args } = raisedLimit(argv);
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };
  cleanups.push(stop);
  const listening = await withDeadline(
    "baseline server start",
    20_000,
    new Promise<number>((resolve) => createInterface({ input: child.stdout }).once("line", (l) => resolve((JSON.parse(l) as { port: number }).port))),
  );
  return { pid: child.pid!, port: listening, listeningAt: epochNow(), stop };
}

type BaselineServer = Awaited<ReturnType<typeof startBaseline>>;

/** A bare baseline server (its idle RSS read first) and `n` sessions heartbeating at `intervalMs`. */
async function openBaseline(n: number, certs: BenchCerts, intervalMs: number, ticketKeys?: string): Promise<{ server: BaselineServer; sims: Simulator[]; idleRss: number; openMs: number }> {
  const server = await startBaseline(certs, 0, ticketKeys);
  const idleRss = await idleRssBytes(server.pid);
  const { sims, openMs } = await startSims(n, certs, `wss://127.0.0.1:${server.port}/worker`, "baseline", intervalMs);
  return { server, sims, idleRss, openMs };
}

async function stopFleet(sims: Simulator[], server: { stop: () => Promise<void> }): Promise<void> {
  for (const s of sims) await s.stop();
  await server.stop();
}

/**
 * The transport's own reconnect storms: a fresh bare server and fleet, and the server restarted on the same port,
 * first with its ticket keys, so every session resumes (as after a manager restart), then with new ones, so every
 * session comes back with a full handshake. Fresh, so the storms do not change the RSS that the steady state
 * measured, and alone on the machine, like the manager's storms.
 */
async function baselineStorms(n: number, certs: BenchCerts, intervalMs: number): Promise<Pick<SizeResult["baseline"], "stormResumed" | "stormFull">> {
  say(`  baseline reconnect storms: a fresh bare server and ${n} sessions, then the server restarted twice`);
  const keys = randomBytes(48).toString("hex");
  const fleet = await openBaseline(n, certs, intervalMs, keys);
  let server = fleet.server;
  const storm = async (resume: boolean) => {
    await sleep(Math.max(3000, 2 * intervalMs));
    for (const s of fleet.sims) await s.call({ op: "resume-sessions", resume });
    const timed = await timeStorm(fleet.sims, n, async () => {
      await server.stop();
      return (server = await startBaseline(certs, server.port, resume ? keys : randomBytes(48).toString("hex")));
    });
    const result = { seconds: timed.seconds, curve: timed.curve, serverCpuS: timed.cpuS, simulatorsCpuS: timed.simulatorsCpuS, stealS: timed.stealS, failures: timed.failures, resumed: timed.back.resumed, handshakes: timed.handshakes };
    say(`    ${resume ? "resumed" : "full handshakes"}: all ${n} back in ${result.seconds.toFixed(1)} s (${JSON.stringify(result.curve)}), ${result.resumed} resumed, ${result.handshakes} TLS handshakes, server CPU ${result.serverCpuS.toFixed(1)} s, simulators' CPU ${result.simulatorsCpuS.toFixed(1)} s, steal ${result.stealS.toFixed(1)} s, failed attempts ${JSON.stringify(result.failures)}`);
    return result;
  };
  const stormResumed = await storm(true);
  const stormFull = await storm(false);
  await stopFleet(fleet.sims, server);
  return { stormResumed, stormFull };
}

/**
 * Restarts a server (`restart` stops the old one and returns the new one) and times the storm: from the new one's
 * "listening" until the last of `expected` sessions is back, with its CPU and the failed attempts meanwhile.
 */
async function timeStorm(
  sims: Simulator[],
  expected: number,
  restart: () => Promise<{ pid: number; listeningAt: number }>,
): Promise<{ back: SimStats; seconds: number; curve: Record<string, number>; cpuS: number; simulatorsCpuS: number; stealS: number; failures: Record<string, number>; handshakes: number }> {
  const before = await allStats(sims);
  const server = await restart();
  const cpu0 = cpuSeconds(server.pid);
  // The clients' side of the storm runs on the same two cores: whatever they use, the server cannot.
  const simsCpu = () => sims.reduce((sum, s) => sum + cpuSeconds(s.pid), 0);
  const simsCpu0 = simsCpu();
  const steal0 = stealSeconds();
  const curve: Record<string, number> = {};
  const back = await waitOpen(sims, expected, server.listeningAt, 120_000, curve);
  return {
    back,
    seconds: (back.lastWelcomeAt - server.listeningAt) / 1000,
    curve,
    cpuS: cpuSeconds(server.pid) - cpu0,
    simulatorsCpuS: simsCpu() - simsCpu0,
    stealS: stealSeconds() - steal0,
    failures: failuresSince(before, back),
    handshakes: back.handshakes - before.handshakes,
  };
}

/** Failed connection attempts between two readings, by error code. */
function failuresSince(before: SimStats, now: SimStats): Record<string, number> {
  return Object.fromEntries(
    Object.entries(now.failures)
      .map(([k, v]) => [k, v - (before.failures[k] ?? 0)] as const)
      .filter(([, v]) => v > 0),
  );
}

/** Waits until `expected` sessions are open again; `curve` gets the seconds after `since` at which 50/90/99% were. */
async function waitOpen(sims: Simulator[], expected: number, since: number, deadlineMs: number, curve: Record<string, number> = {}): Promise<SimStats> {
  const end = epochNow() + deadlineMs;
  for (;;) {
    const s = await allStats(sims, since);
    for (const p of [50, 90, 99]) {
      if (curve[`p${p}`] === undefined && s.open >= (expected * p) / 100) curve[`p${p}`] = Math.round((epochNow() - since) / 100) / 10;
    }
    if (s.open >= expected) return s;
    if (epochNow() > end) throw new Error(`only ${s.open} of ${expected} sessions back after ${deadlineMs / 1000} s (${JSON.stringify(s.failures)})`);
    await sleep(100);
  }
}

/** The manager (its idle RSS read first) with `n` simulated workers, all healthy at the settled pace. */
async function openManager(n: number, certs: BenchCerts, dir: string, interval: number) {
  const port = await freePort();
  const metricsPort = await freePort();
  const stateFile = join(dir, `state-${n}.json`);
  rmSync(stateFile, { force: true });
  rmSync(`${stateFile}.ticket-keys`, { force: true });
  say(`  manager: ${n} simulated workers`);
  // One object throughout: a restart replaces `manager` in it, and the cleanup stops whichever is current.
  const m = { manager: await BenchManager.start(certs, port, stateFile, managerNodeArgs, { port: metricsPort }), port, metricsPort, stateFile };
  cleanups.push(() => m.manager.stop());
  const idleRss = await idleRssBytes(m.manager.pid);
  const { sims, openMs } = await startSims(n, certs, `wss://127.0.0.1:${port}/worker`, "manager", 0);
  say(`  ${n} sessions opened in ${(openMs / 1000).toFixed(1)} s`);
  // Every worker healthy, and the pace settled (it follows the fleet's size once a second).
  await withDeadline(
    "all workers healthy",
    120_000,
    (async () => {
      for (;;) {
        const counts = await m.manager.counts();
        const s = await allStats(sims);
        if (counts.healthy === n && s.intervals[interval] === n) return;
        await sleep(500);
      }
    })(),
  );
  await sleep(Math.max(3000, 2 * interval));
  return Object.assign(m, { sims, idleRss, openMs });
}

/**
 * Each tool's text answer with default arguments, as an assistant would first call it: characters, and tokens
 * estimated at four characters each. get_worker_status asks the first listed worker; a simulated worker answers
 * no full status, so its answer is the heartbeat fallback (the unit test answer-budget.test.ts covers the full one).
 */
async function answerSizes(manager: BenchManager): Promise<Record<string, AnswerSize>> {
  const listed = (await manager.tool("list_workers")).result.structuredContent as { workers: Array<{ id: string }> };
  const calls: Array<[string, Record<string, unknown>]> = [
    ["list_workers", {}],
    ["get_worker_status", { worker_id: listed.workers[0]?.id ?? "none" }],
    ["get_all_workers_status", {}],
    ["get_fleet_summary", {}],
    ["get_worker_events", {}],
  ];
  const sizes: Record<string, AnswerSize> = {};
  for (const [name, args] of calls) {
    const { result } = await manager.tool(name, args);
    const chars = result.content.reduce((sum, c) => sum + (c.type === "text" ? c.text.length : 0), 0);
    sizes[name] = { chars, tokens: Math.ceil(chars / 4) };
  }
  return sizes;
}

/** Everything after the steady state: MCP latency, the fan-out, detection, and the two reconnect storms. */
async function finishManager(
  n: number,
  certs: BenchCerts,
  interval: number,
  m: Awaited<ReturnType<typeof openManager>>,
  steady: SteadyState,
): Promise<SizeResult["manager"]> {
  const { sims, idleRss, openMs, port, metricsPort, stateFile } = m;
  let manager = m.manager;
  if (opts.profile) {
    process.kill(manager.pid, "SIGUSR2");
    say(`  heap snapshot requested (written to ${opts.profile})`);
    await sleep(Math.max(5000, n));
  }

  say(`  MCP latency`);
  const latency = async (name: string, args: Record<string, unknown>, calls: number) => {
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < calls; i++) {
      const r = await manager.tool(name, args);
      ms.push(r.ms);
      bytes = JSON.stringify(r.result).length;
    }
    ms.sort((a, b) => a - b);
    return { p50: percentile(ms, 50), p99: percentile(ms, 99), bytes };
  };
  const listCalls = opts.calls;
  const listWorkers = await latency("list_workers", {}, listCalls);
  const allStatus = await latency("get_all_workers_status", { limit: 100 }, opts.calls);
  const answers = await answerSizes(manager);
  say(`  answer sizes with default arguments: ${JSON.stringify(answers)}`);
  const scrape = await measureScrapes(metricsPort, manager.pid, SCRAPES);
  say(`  GET /metrics: ${JSON.stringify(scrape)}`);
  const fan = await fanOut(manager, n, say);

  say(`  detection: ${KILLED_SAMPLES} killed, ${FROZEN_SAMPLES} frozen`);
  const detectionSteal0 = stealSeconds();
  const killed: Array<{ ms: number; stealMs: number }> = [];
  for (let i = 0; i < KILLED_SAMPLES; i++) {
    const sim = sims[i % sims.length]!;
    const index = Math.floor(i / sims.length) * 7 + 3;
    // The hypervisor's share around each sample: a vCPU paused for a moment delays one detection by as much.
    const steal0 = stealSeconds();
    const k = await sim.call<{ op: "killed"; id: string; at: number }>({ op: "kill", index });
    const at = await manager.transitionTime(k.id, "unhealthy", k.at, 10_000);
    // The log's times are whole milliseconds: compare at that resolution, so a fast detection is never negative.
    killed.push({ ms: at - Math.floor(k.at), stealMs: Math.round((stealSeconds() - steal0) * 1000) });
  }
  const bound = interval * MISSED;
  const frozen = await Promise.all(
    Array.from({ length: FROZEN_SAMPLES }, async (_, i) => {
      const sim = sims[i % sims.length]!;
      const index = 100 + i * 11;
      const f = await sim.call<{ op: "frozen"; id: string; lastHeartbeatAt: number }>({ op: "freeze", index });
      const at = await manager.transitionTime(f.id, "unhealthy", f.lastHeartbeatAt, bound + 10_000);
      await sim.call({ op: "kill", index });
      return at - Math.floor(f.lastHeartbeatAt);
    }),
  );
  const alive = n - KILLED_SAMPLES - FROZEN_SAMPLES;
  const detectionStealS = stealSeconds() - detectionSteal0;

  const storm = async (resume: boolean) => {
    for (const s of sims) await s.call({ op: "resume-sessions", resume });
    say(`  reconnect storm ${resume ? "with" : "without"} TLS session resumption: restarting the manager`);
    const { back, seconds, curve, cpuS: managerCpuS, simulatorsCpuS, stealS, failures, handshakes } = await timeStorm(sims, alive, async () => {
      await manager.stop();
      return (manager = m.manager = await BenchManager.start(certs, port, stateFile, managerNodeArgs, { port: metricsPort }));
    });
    const summary = (await manager.tool("get_fleet_summary")).result.structuredContent as { connected: number; counts: Record<string, number> };
    if (summary.connected !== alive) throw new Error(`after the storm the manager counts ${summary.connected} connected, expected ${alive}`);
    const warnings = { ...manager.warnings };
    say(`    manager warnings: ${JSON.stringify(warnings)}`);
    say(`    all ${alive} back in ${seconds.toFixed(1)} s (${JSON.stringify(curve)}), ${back.resumed} resumed, ${handshakes} TLS handshakes, manager CPU ${managerCpuS.toFixed(1)} s, simulators' CPU ${simulatorsCpuS.toFixed(1)} s, steal ${stealS.toFixed(1)} s, failed attempts ${JSON.stringify(failures)}`);
    return { seconds, resumed: back.resumed, handshakes, sessions: alive, healthy: summary.counts.healthy ?? 0, curve, managerCpuS, simulatorsCpuS, stealS, failures, warnings };
  };
  const stormResumed = await storm(true);
  // Settle before the second storm, as a fleet would be between two restarts.
  await sleep(Math.max(3000, 2 * interval));
  const stormFull = await storm(false);
  const rssAfterStorms = rssBytes(manager.pid);

  // The same fleet, its manager run as a service: the stdio latency figures again, over MCP over HTTP.
  say(`  the manager as a service: restarting it with --daemon`);
  await manager.stop();
  const daemon = await daemonLatency(certs, port, stateFile, alive, opts.calls, say);
  cleanups.push(daemon.stop);
  say(`    over HTTP: list_workers p50 ${daemon.listWorkers.p50.toFixed(1)} ms, p99 ${daemon.listWorkers.p99.toFixed(1)} ms; get_all_workers_status p50 ${daemon.allStatus.p50.toFixed(1)} ms, p99 ${daemon.allStatus.p99.toFixed(1)} ms`);

  await stopFleet(sims, daemon);
  killed.sort((a, b) => a.ms - b.ms);
  return {
    idleRss,
    ...steady,
    rssPerWorker: (steady.rss - idleRss) / n,
    rssAfterStorms,
    openMs,
    intervalMs: interval,
    boundMs: bound,
    paces: manager.paces,
    listWorkers: { ...listWorkers, calls: listCalls },
    answers,
    allStatus: { ...allStatus, calls: opts.calls },
    http: { listWorkers: daemon.listWorkers, allStatus: daemon.allStatus },
    killedMs: killed.map((k) => k.ms),
    killedStealMs: killed.map((k) => k.stealMs),
    frozenMs: frozen.sort((a, b) => a - b),
    detectionStealS,
    stormResumed,
    stormFull,
    fanOut: fan,
    scrape,
  };
}

/** One fleet size: the baseline and the manager side by side, then the manager's other phases and the bare storms. */
async function measureSize(n: number, certs: BenchCerts): Promise<SizeResult> {
  say(`N = ${n}`);
  const interval = pacedInterval({ baseMs: BASE_INTERVAL_MS, budgetPerSecond: BUDGET, connected: n });
  // The steady state is measured for both servers at once, over the same window: the machine's other load (it
  // is a VM) then weighs on both alike, and their ratio holds still where two windows minutes apart did not.
  say(`  baseline: bare https + ws server, ${n} sessions, heartbeat every ${interval} ms`);
  const base = await openBaseline(n, certs, interval);
  const stopBase = () => stopFleet(base.sims, base.server);
  cleanups.push(stopBase);
  const m = await openManager(n, certs, opts.out, interval);
  say(`  steady state at a ${interval} ms interval: CPU of the manager and of the baseline over the same ${opts.window} s`);
  const perf = opts.perf
    ? spawn("perf", ["record", "-e", "cpu-clock", "-F", "499", "-g", "-p", String(m.manager.pid), "-o", join(opts.out, `perf-${n}.data`), "--", "sleep", String(opts.window)], {
        stdio: "ignore",
      })
    : null;
  const [baseSteady, managerSteady] = await Promise.all([steadyState(base.server.pid, base.sims), steadyState(m.manager.pid, m.sims)]);
  if (perf) await new Promise((resolve) => (perf.exitCode !== null ? resolve(null) : perf.once("exit", resolve)));
  await stopBase();
  const manager = await finishManager(n, certs, interval, m, managerSteady);
  const storms = await baselineStorms(n, certs, interval);
  const baseline = { idleRss: base.idleRss, ...baseSteady, rssPerWorker: (baseSteady.rss - base.idleRss) / n, openMs: base.openMs, ...storms };
  await cleanup();
  return { n, baseline, manager };
}

async function main(): Promise<void> {
  const limits = openFileLimits();
  // Each server holds one descriptor per session plus its own few dozen; a simulator holds half the sessions.
  const maxN = limits.hard - 500;
  const sizes = [...new Set(opts.sizes.map((n) => Math.min(n, maxN)))];
  if (sizes.some((n, i) => n !== opts.sizes[i])) say(`open-file hard limit is ${limits.hard}: sizes capped at ${maxN}`);
  mkdirSync(opts.out, { recursive: true });
  const results: SizeResult[] = [];
  if (!opts.joinsOnly) {
    const certs = await ensureBenchCerts(join(opts.out, "fleet"), Math.max(...sizes), say);
    for (const n of sizes) results.push(await measureSize(n, certs));
  }
  const joins: JoinResult | null = opts.joins > 0 ? await joinBench(opts.joins, join(opts.out, "join-fleet"), say, managerNodeArgs) : null;
  const machine = {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    openssl: process.versions.openssl,
    openFileLimit: limits,
  };
  const tables = [...(results.length > 0 ? [renderTable(results, machine)] : []), ...(joins ? [renderJoinTable(joins)] : [])];
  process.stdout.write(tables.join("\n\n") + "\n");
  const file = join(opts.out, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  const json = JSON.stringify({ date: new Date().toISOString(), machine, targets: TARGETS, settings: { baseIntervalMs: BASE_INTERVAL_MS, budget: BUDGET, missed: MISSED, windowS: opts.window, calls: opts.calls }, results, joins }, null, 2);
  writeFileSync(file, json);
  writeFileSync(join(opts.out, "latest.json"), json);
  say(`results written to ${file}`);
}

main()
  .catch(async (err: unknown) => {
    say(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
