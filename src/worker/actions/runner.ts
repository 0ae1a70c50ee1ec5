import { spawn, type ChildProcess } from "node:child_process";
import type { RunResult, RunStatus } from "../../protocol/actions.js";
import { OutputCapture, type OutputStream } from "./output-capture.js";

/** What an action's program gets as its environment: nothing of the agent's own (its paths, its secrets). */
export const ACTION_ENV: Readonly<Record<string, string>> = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

/** Between SIGTERM to the process group and SIGKILL. */
export const KILL_GRACE_MS = 5000;

/**
 * How long, after the program has exited and its group has been killed, its output pipes may stay open: only a
 * process that left the group (setsid) can still hold them, and it is not waited for.
 */
const PIPE_CLOSE_WAIT_MS = 2000;

export interface RunCommandOptions {
  argv: readonly string[];
  timeoutMs: number;
  /** Aborting it cancels the run: SIGTERM to the group, SIGKILL after the grace. */
  signal: AbortSignal;
  /** The first MAX_KEPT_OUTPUT_BYTES over both streams, as text, as it comes. */
  onOutput: (stream: OutputStream, text: string) => void;
  killGraceMs?: number;
}

/** The RunResult fields a command run produces (a command has no structured result). */
export type CommandResult = Omit<RunResult, "structured" | "structuredOmitted">;

/**
 * Runs one program: in its own process group (so every process it starts can be signalled at once), without a
 * shell, stdin closed, a minimal environment, cwd `/`. Resolves when the program has ended and no process of its
 * group is left; never rejects.
 */
export function runCommand(options: RunCommandOptions): Promise<CommandResult> {
  return new Promise((resolve) => {
    const startedAt = new Date();
    const t0 = performance.now();
    const capture = new OutputCapture(options.onOutput);
    const grace = options.killGraceMs ?? KILL_GRACE_MS;
    let ending: "timed_out" | "cancelled" | null = null;
    let exited = false;
    let done = false;
    const timers: NodeJS.Timeout[] = [];

    const finish = (status: RunStatus, exitCode: number | null, signal: string | null, error?: string) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      options.signal.removeEventListener("abort", onAbort);
      const streams = capture.finish();
      const endedAt = new Date();
      resolve({
        status,
        exitCode,
        signal,
        startedAt: startedAt.toISOString(),
        endedAt: endedAt.toISOString(),
        durationMs: Math.max(0, Math.round(performance.now() - t0)),
        stdout: streams.stdout,
        stderr: streams.stderr,
        ...(error ? { error } : {}),
      });
    };

    if (options.signal.aborted) {
      finish("cancelled", null, null);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(options.argv[0]!, options.argv.slice(1), {
        detached: true,
        shell: false,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...ACTION_ENV },
        cwd: "/",
      });
    } catch {
      finish("failed", null, null, "SPAWN_FAILED");
      return;
    }
    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // ESRCH: the group is already empty.
      }
    };
    const stop = (why: "timed_out" | "cancelled") => {
      if (ending || exited) return;
      ending = why;
      killGroup("SIGTERM");
      timers.push(setTimeout(() => killGroup("SIGKILL"), grace));
    };
    function onAbort() {
      stop("cancelled");
    }

    child.on("error", () => {
      // Only a failure to start matters here; a program that started reports through "exit".
      if (child.pid === undefined) finish("failed", null, null, "SPAWN_FAILED");
    });
    child.stdout!.on("data", (chunk: Buffer) => capture.write("stdout", chunk));
    child.stderr!.on("data", (chunk: Buffer) => capture.write("stderr", chunk));
    child.on("exit", (code, signal) => {
      exited = true;
      // What the program left running in its group ends with it.
      killGroup("SIGKILL");
      const status: RunStatus = ending ?? (code === 0 ? "succeeded" : "failed");
      const settle = () => finish(status, signal ? null : code, signal);
      if (child.stdout!.readableEnded && child.stderr!.readableEnded) {
        settle();
        return;
      }
      child.once("close", settle);
      timers.push(
        setTimeout(() => {
          child.stdout!.destroy();
          child.stderr!.destroy();
          settle();
        }, PIPE_CLOSE_WAIT_MS),
      );
    });
    if (child.pid !== undefined) {
      timers.push(setTimeout(() => stop("timed_out"), options.timeoutMs));
      options.signal.addEventListener("abort", onAbort, { once: true });
    }
  });
}
