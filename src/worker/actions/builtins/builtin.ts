import { CatalogEntry } from "../../../protocol/actions.js";
import type { ArgumentValue } from "../../../protocol/arguments.js";
import type { z } from "zod";

/** What a diagnostic is given to run: the session's (or the invocation's) end, and the time it may take. */
export interface BuiltinContext {
  signal: AbortSignal;
  timeoutMs: number;
}

/**
 * A built-in diagnostic: its catalogue entry, and a run that returns a result matching its output schema
 * (DIAGNOSTIC_OUTPUTS in protocol/diagnostics.ts). A run that cannot answer throws a DiagnosticError, whose code
 * becomes the invocation's error; one whose signal aborts rejects with the signal's reason.
 */
export interface Builtin {
  entry: CatalogEntry; // kind "builtin"
  run(args: Record<string, ArgumentValue>, ctx: { signal: AbortSignal; timeoutMs: number }): Promise<Record<string, unknown>>;
}

/** A catalogue entry for a read-only built-in, checked (and its defaults filled) when the module loads. */
export function builtinEntry(entry: Omit<z.input<typeof CatalogEntry>, "kind" | "destructive">): CatalogEntry {
  return CatalogEntry.parse({ ...entry, kind: "builtin", destructive: false });
}

/**
 * Why a diagnostic gave no result: UNAVAILABLE (cannot work on this host: no systemd, a command missing),
 * TIMEOUT, COMMAND_FAILED (the command it runs said no), EACCES (this user may not read it), or another file
 * system code (ENOENT, ENOTDIR).
 */
export class DiagnosticError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DiagnosticError";
    this.code = code;
  }
}

/**
 * `promise`, unless the time runs out first (TIMEOUT) or the signal aborts (its reason). What the promise was
 * doing is not stopped: this is for calls that cannot be cancelled (systeminformation, getaddrinfo).
 */
export function within<T>(promise: Promise<T>, ms: number, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      done();
      reject(new DiagnosticError("TIMEOUT", `${what} gave no answer within ${ms} ms`));
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        done();
        resolve(value);
      },
      (err: unknown) => {
        done();
        reject(err as Error);
      },
    );
  });
}

/** One call of `fn` at a time: callers while it runs share its answer (systeminformation blocks the event loop). */
export function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () =>
    (running ??= fn().finally(() => {
      running = undefined;
    }));
}
