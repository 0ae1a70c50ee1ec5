/**
 * The join phase of `npm run bench`: N bare hosts joining at once with one token (`--uses N`, approve auto), each
 * from its own loopback address, each then connecting with its new certificate. Measured: wall time until all are
 * enrolled and until all are healthy, the manager's CPU per enrollment, and one join's p50 / p99 (docs/performance.md,
 * "Joining").
 */
import { spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initFleet } from "../../src/pki/store.js";
import { certLayout } from "../../src/pki/layout.js";
import { BenchManager } from "./manager.js";
import { cpuSeconds, epochNow, freePort, raisedLimit, sleep } from "./procs.js";
import type { JoinSimCommand, JoinSimReply, JoinSimStats } from "./join-sim-protocol.js";
import { percentile, type JoinResult } from "./report.js";

const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
const JOIN_SIM = fileURLToPath(new URL("./join-sim.ts", import.meta.url));
/** Hosts per join simulator: the keys, the handshakes and the sessions of one process. */
const PER_SIMULATOR = 500;

/** One join simulator process; replies are matched to requests by their op. */
class JoinSimulator {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<string, (r: JoinSimReply) => void>();
  readonly ready: Promise<void>;

  constructor() {
    const { command, args } = raisedLimit([process.execPath, "--import", "tsx", JOIN_SIM]);
    this.child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((resolve) => this.waiting.set("ready", () => resolve()));
    this.child.on("message", (m) => {
      const r = m as JoinSimReply;
      const w = this.waiting.get(r.op);
      this.waiting.delete(r.op);
      w?.(r);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  call<R extends JoinSimReply>(cmd: JoinSimCommand, answer: R["op"]): Promise<R> {
    return new Promise((resolve) => {
      this.waiting.set(answer, resolve as (r: JoinSimReply) => void);
      this.child.send(cmd);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    await Promise.race([this.call({ op: "quit" }, "ok"), sleep(2000)]);
    this.child.kill("SIGKILL");
    await exited;
  }
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

function tokenCreate(dir: string, uses: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "token", "create", "--dir", dir, "--uses", String(uses), "--approve", "auto"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`token create failed (${code}): ${err}`))));
  });
}

function merged(all: JoinSimStats[]): JoinSimStats {
  const out: JoinSimStats = { total: 0, issued: 0, welcomed: 0, attempts: 0, joinMs: [], lastIssuedAt: 0, lastWelcomedAt: 0, failures: {} };
  for (const s of all) {
    out.total += s.total;
    out.issued += s.issued;
    out.welcomed += s.welcomed;
    out.attempts += s.attempts;
    out.joinMs.push(...s.joinMs);
    out.lastIssuedAt = Math.max(out.lastIssuedAt, s.lastIssuedAt);
    out.lastWelcomedAt = Math.max(out.lastWelcomedAt, s.lastWelcomedAt);
    for (const [k, v] of Object.entries(s.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
  }
  return out;
}

/**
 * A fresh fleet in `dir` (its CA key beside the CA: enrollment on), a manager on its defaults, one token for `n`
 * hosts, and `n` simulated hosts dialling at once. Every process it starts is stopped before it returns.
 */
export async function joinBench(n: number, dir: string, say: (s: string) => void, nodeArgs: string[] = []): Promise<JoinResult> {
  rmSync(dir, { recursive: true, force: true });
  await initFleet({ dir, fleet: "bench" });
  const files = certLayout(dir);
  const port = await freePort();
  const stops: Array<() => Promise<void>> = [];
  try {
    say(`joins: ${n} hosts joining at once with one token (--uses ${n}, approve auto), each from its own 127.0.x.y`);
    const manager = await BenchManager.start({ dir, ca: files.ca, cert: files.manager, key: files.managerKey, workersFile: "" }, port, join(dir, "state.json"), nodeArgs);
    stops.push(() => manager.stop());
    const joinString = await tokenCreate(dir, n);
    const count = Math.ceil(n / PER_SIMULATOR);
    const sims = Array.from({ length: count }, () => new JoinSimulator());
    for (const s of sims) stops.push(() => s.stop());
    await Promise.all(sims.map((s) => s.ready));
    const per = Math.ceil(n / count);
    await withDeadline("making the hosts' keys and CSRs", 120_000, Promise.all(sims.map((s, i) => s.call({ op: "prepare", from: i * per, to: Math.min(n, (i + 1) * per) }, "prepared"))));

    const cpu0 = cpuSeconds(manager.pid);
    const started = epochNow();
    let cpuAtEnrolled = 0;
    let enrolledAt = 0;
    // The manager's CPU up to its last `host joined`, read as soon as the count is reached.
    const watch = (async () => {
      while (manager.joined.length < n && epochNow() - started < 180_000) await sleep(20);
      cpuAtEnrolled = cpuSeconds(manager.pid);
      enrolledAt = manager.joined.at(-1) ?? epochNow();
    })();
    const replies = await withDeadline(`${n} hosts joined and welcomed`, 180_000, Promise.all(sims.map((s) => s.call<{ op: "joined"; stats: JoinSimStats }>({ op: "go", host: "127.0.0.1", port, join: joinString }, "joined"))));
    await watch;
    const stats = merged(replies.map((r) => r.stats));
    const cpuAtWelcomed = cpuSeconds(manager.pid);
    let counts: Record<string, number> = {};
    await withDeadline(
      "all joined hosts healthy",
      60_000,
      (async () => {
        while (((counts = await manager.counts()).healthy ?? 0) < n) await sleep(250);
      })(),
    ).catch((err: Error) => {
      throw new Error(`${err.message}: the manager counts ${JSON.stringify(counts)}; warnings ${JSON.stringify(manager.warnings)}`);
    });
    const healthyAt = epochNow();
    const result: JoinResult = {
      n,
      enrolled: manager.joined.length,
      healthy: (await manager.counts()).healthy ?? 0,
      enrolledS: (enrolledAt - started) / 1000,
      welcomedS: (stats.lastWelcomedAt - started) / 1000,
      healthyS: (healthyAt - started) / 1000,
      managerCpuS: cpuAtEnrolled - cpu0,
      cpuPerEnrollmentMs: ((cpuAtEnrolled - cpu0) / n) * 1000,
      cpuPerJoinAndSessionMs: ((cpuAtWelcomed - cpu0) / n) * 1000,
      joinP50Ms: percentile(stats.joinMs, 50),
      joinP99Ms: percentile(stats.joinMs, 99),
      attempts: stats.attempts,
      failures: stats.failures,
      refused: { ...manager.joinRefusals },
    };
    say(`  ${JSON.stringify(result)}`);
    return result;
  } finally {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch {
        // best effort: the next one still stops
      }
    }
  }
}
