import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import type { SimCommand, SimReply, SimStats } from "./sim-protocol.js";

/**
 * Runs `argv` with its open-file limit raised to the hard limit: Node cannot call setrlimit, the shell can.
 * Each server and simulator holds one descriptor per connection.
 */
export function raisedLimit(argv: string[]): { command: string; args: string[] } {
  return { command: "sh", args: ["-c", 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', ...argv] };
}

export function openFileLimits(): { soft: number; hard: number } {
  const read = (flag: string) => Number(spawnSync("sh", ["-c", `ulimit ${flag}`], { encoding: "utf8" }).stdout.trim());
  const hard = read("-Hn");
  return { soft: read("-Sn"), hard: Number.isFinite(hard) ? hard : Number.MAX_SAFE_INTEGER };
}

const TICKS_PER_SECOND = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** User + system CPU seconds from a `/proc/.../stat` file (a process's or a thread's). */
function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, "utf8");
  // Fields after the command name, which may hold spaces and is wrapped in parentheses.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/**
 * CPU seconds the hypervisor gave to other guests while this machine had work ("steal", summed over its CPUs).
 * This machine is a VM: a phase that loses CPU this way runs slower for reasons that are not in the code.
 */
export function stealSeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").slice(0, 200).split("\n", 1)[0]!.trim().split(/\s+/);
  // cpu user nice system idle iowait irq softirq steal …
  return Number(fields[8] ?? 0) / TICKS_PER_SECOND;
}

/** User + system CPU seconds a process has used so far (from /proc; Linux only). */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds per thread: `main` (JavaScript, TLS, the event loop) and the others by name (V8's GC and compiler
 * helpers are all called `node`; libuv's pool `libuv-worker`), summed over same-named threads.
 */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = Number(tid) === pid ? "main" : readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      out[name] = (out[name] ?? 0) + statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
    } catch {
      // the thread ended between listing and reading
    }
  }
  return out;
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
export const epochNow = () => performance.timeOrigin + performance.now();

const SIM = fileURLToPath(new URL("./sim.ts", import.meta.url));

/** One simulator process, commanded one request at a time. */
export class Simulator {
  private readonly child: ChildProcess;
  private waiting: ((reply: SimReply) => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  readonly ready: Promise<void>;

  constructor() {
    const { command, args } = raisedLimit([process.execPath, "--import", "tsx", SIM]);
    this.child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    let markReady!: () => void;
    this.ready = new Promise((resolve) => (markReady = resolve));
    this.child.on("message", (m) => {
      const reply = m as SimReply;
      if (reply.op === "ready") return markReady();
      const w = this.waiting;
      this.waiting = null;
      w?.(reply);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  call<R extends SimReply>(cmd: SimCommand): Promise<R> {
    const run = () =>
      new Promise<R>((resolve) => {
        this.waiting = resolve as (r: SimReply) => void;
        this.child.send(cmd);
      });
    const p = this.queue.then(run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async stats(since?: number): Promise<SimStats> {
    return (await this.call<{ op: "stats"; stats: SimStats }>({ op: "stats", since })).stats;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    await Promise.race([this.call({ op: "quit" }), sleep(2000)]);
    this.child.kill("SIGKILL");
    await exited;
  }
}

export function sumStats(all: SimStats[]): SimStats {
  const out: SimStats = { total: 0, open: 0, resumed: 0, lastWelcomeAt: 0, heartbeatsSent: 0, handshakes: 0, invocationsRun: 0, intervals: {}, failures: {} };
  for (const s of all) {
    out.total += s.total;
    out.open += s.open;
    out.resumed += s.resumed;
    out.lastWelcomeAt = Math.max(out.lastWelcomeAt, s.lastWelcomeAt);
    out.heartbeatsSent += s.heartbeatsSent;
    out.handshakes += s.handshakes;
    out.invocationsRun += s.invocationsRun;
    for (const [k, v] of Object.entries(s.intervals)) out.intervals[k] = (out.intervals[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.failures)) out.failures[k] = (out.failures[k] ?? 0) + v;
  }
  return out;
}
