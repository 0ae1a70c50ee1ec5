import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The built CLI: tests run what users run. `npm test` builds first. */
export const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface LogLine {
  level?: string;
  msg?: string;
  /** When the test received the line (ms, performance.now()); the fairest clock for "within N ms of" checks. */
  receivedAt: number;
  [key: string]: unknown;
}

const live = new Set<Proc>();

/** Kill every process a test started; registered with `after` and on exit, so failures leave nothing behind. */
export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
}
process.on("exit", killAll);

/** A child process running `mcp-fleet ...`, whose stderr JSON log lines are collected as they arrive. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stdout: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  /**
   * `launcher` runs first, e.g. `ip netns exec NS ...`, and must exec so the pid stays the program's; `program`
   * is what runs with `args`, `mcp-fleet` by default.
   */
  constructor(
    readonly name: string,
    args: string[],
    env: Record<string, string> = {},
    launcher: string[] = [],
    program: string[] = [process.execPath, CLI],
  ) {
    const argv = [...launcher, ...program, ...args];
    this.child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      // A pipe, kept open: the manager serves MCP on stdin and stops when it closes.
      stdio: ["pipe", "pipe", "pipe"],
    });
    live.add(this);
    createInterface({ input: this.child.stderr! }).on("line", (text) => {
      let line: LogLine;
      try {
        line = { ...(JSON.parse(text) as object), receivedAt: performance.now() };
      } catch {
        line = { raw: text, receivedAt: performance.now() };
      }
      this.lines.push(line);
      for (const w of this.waiters) w();
    });
    createInterface({ input: this.child.stdout! }).on("line", (text) => this.stdout.push(text));
    // "close", not "exit": only then has everything the process wrote to its stdout and stderr been read, so a
    // test that awaits `exited` sees every line.
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        live.delete(this);
        resolve({ code, signal });
        for (const w of this.waiters) w();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Resolves with the first line (already seen or yet to come) that matches; rejects after `timeoutMs`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number, what: string, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.lines.slice(from).find(pred);
        if (hit) {
          cleanup();
          resolve(hit);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        const tail = this.lines.slice(-15).map((l) => JSON.stringify(l)).join("\n");
        reject(new Error(`${this.name}: no "${what}" within ${timeoutMs} ms. Last lines:\n${tail}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
      };
      const waiter = () => void check();
      if (!check()) this.waiters.push(waiter);
    });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.kill("SIGTERM");
    const t = setTimeout(() => this.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Runs the CLI to completion (certs commands); returns exit code and output. */
export function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
