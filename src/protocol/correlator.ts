import { FleetError } from "../errors.js";
import type { Progress, Request, RequestId, Response } from "./messages.js";

export interface CallOptions {
  timeoutMs: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /**
   * Called at once with a function that ends the call as aborted (E_CLOSED), as an abort of `signal` would: an
   * AbortController per call costs about a kilobyte, which thousands of calls in flight (a fan-out) hold each.
   */
  abortable?: (abort: () => void) => void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** The caller's options, whose hooks are called as its methods (a run's options are one object, runner.ts). */
  options: CallOptions;
  cleanup?: () => void;
}

/**
 * Request/response correlation over one session, apart from the socket: it only needs a `send` function.
 * Every call ends exactly once: with the result, the remote error, a timeout, an abort, or the session's end.
 */
export class Correlator {
  private readonly pending = new Map<RequestId, Pending>();
  private nextId = 1;

  constructor(private readonly send: (request: Request) => void) {}

  get size(): number {
    return this.pending.size;
  }

  call(method: string, params: unknown, options: CallOptions): Promise<unknown> {
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      if (options.signal?.aborted) {
        reject(new FleetError("E_CLOSED", `request ${method} aborted`));
        return;
      }
      const onAbort = () => this.settle(id, new FleetError("E_CLOSED", `request ${method} aborted`));
      const signal = options.signal;
      signal?.addEventListener("abort", onAbort, { once: true });
      const timer = setTimeout(
        () => this.settle(id, new FleetError("E_TIMEOUT", `no answer to ${method} within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      const pending: Pending = { resolve, reject, timer, options };
      if (signal) pending.cleanup = () => signal.removeEventListener("abort", onAbort);
      this.pending.set(id, pending);
      options.abortable?.(onAbort);
      try {
        this.send({ type: "request", id, method, params });
      } catch (err) {
        this.settle(id, new FleetError("E_NOT_CONNECTED", `could not send ${method}`, { cause: err }));
      }
    });
  }

  /** Returns false when the response matches no pending call (late, after a timeout, or made up). */
  handleResponse(response: Response): boolean {
    const p = this.pending.get(response.id);
    if (!p) return false;
    if (response.error) {
      // The code is an identifier; the message is the worker's own text, kept on the error for the log only.
      const err = new FleetError("E_REMOTE", `the worker answered with error ${response.error.code}`);
      this.settle(response.id, Object.assign(err, { remoteCode: response.error.code, remoteDetail: response.error.message }));
    } else {
      this.settle(response.id, undefined, response.result);
    }
    return true;
  }

  handleProgress(progress: Progress): boolean {
    const p = this.pending.get(progress.id);
    if (!p) return false;
    p.options.onProgress?.(progress);
    return true;
  }

  /** The session ended: every call still waiting fails with this error. */
  rejectAll(err: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, err);
  }

  private settle(id: RequestId, err: Error | undefined, value?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.cleanup?.();
    if (err) p.reject(err);
    else p.resolve(value);
  }
}
