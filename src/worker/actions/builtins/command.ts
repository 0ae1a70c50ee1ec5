import { spawn } from "node:child_process";
import { toDetail } from "../../../protocol/text.js";
import { DiagnosticError, type BuiltinContext } from "./builtin.js";

/** The most of a command's stdout a diagnostic reads; past it the command is stopped and the output marked cut. */
export const CAPTURE_MAX_BYTES = 4 * 1024 * 1024;
const STDERR_MAX_BYTES = 16 * 1024;
const ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };

export interface Captured {
  exitCode: number | null;
  signal: string | null;
  stdout: Buffer;
  /** The start of stderr, as text. */
  stderr: string;
  /** stdout reached the cap and the command was stopped. */
  truncated: boolean;
}

/**
 * Runs a read-only command (systemctl, journalctl) and keeps its output: argv as given (no shell), in its own process
 * group, which is killed outright on timeout, abort or a full buffer. Only read-only commands run here, so there
 * is nothing a SIGTERM would let them tidy up. A missing program is UNAVAILABLE; a timeout, TIMEOUT.
 */
export function capture(argv: readonly [string, ...string[]], ctx: BuiltinContext, maxBytes = CAPTURE_MAX_BYTES): Promise<Captured> {
  const [program, ...args] = argv;
  if (ctx.signal.aborted) return Promise.reject(ctx.signal.reason as Error);
  return new Promise<Captured>((resolve, reject) => {
    const child = spawn(program, args, { detached: true, shell: false, stdio: ["ignore", "pipe", "pipe"], env: ENV, cwd: "/" });
    const out: Buffer[] = [];
    let outBytes = 0;
    let truncated = false;
    const err: Buffer[] = [];
    let errBytes = 0;
    let failure: Error | undefined;
    let settled = false;

    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // The group is already gone.
      }
    };
    const stop = (why: Error) => {
      failure ??= why;
      killGroup();
    };
    const finish = () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
      settled = true;
    };
    const onAbort = () => stop(ctx.signal.reason as Error);
    const timer = setTimeout(() => stop(new DiagnosticError("TIMEOUT", `${program} did not finish within ${ctx.timeoutMs} ms`)), ctx.timeoutMs);
    ctx.signal.addEventListener("abort", onAbort, { once: true });

    child.stdout.on("data", (chunk: Buffer) => {
      if (truncated) return;
      const room = maxBytes - outBytes;
      if (chunk.length >= room) {
        out.push(chunk.subarray(0, room));
        outBytes = maxBytes;
        truncated = true;
        killGroup();
        return;
      }
      out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      if (errBytes >= STDERR_MAX_BYTES) return;
      const piece = chunk.subarray(0, STDERR_MAX_BYTES - errBytes);
      err.push(piece);
      errBytes += piece.length;
    });
    child.on("error", (e: NodeJS.ErrnoException) => {
      const why =
        e.code === "ENOENT" || e.code === "EACCES"
          ? new DiagnosticError("UNAVAILABLE", `${program} cannot be run on this host (${e.code})`, { cause: e })
          : new DiagnosticError("COMMAND_FAILED", `${program}: ${toDetail(e.message)}`, { cause: e });
      failure ??= why;
      // Spawning failed: no process, so no close to wait for.
      if (child.pid === undefined && !settled) {
        finish();
        reject(failure);
      }
    });
    child.on("close", (exitCode, signal) => {
      if (settled) return;
      finish();
      if (failure) return reject(failure);
      resolve({ exitCode, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString("utf8"), truncated });
    });
  });
}

/** The first non-empty line of a command's stderr, for a log line or a detail. */
export function firstLine(text: string): string {
  return toDetail(text.split("\n").find((l) => l.trim() !== "") ?? "");
}
