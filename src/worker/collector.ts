import { hostname, loadavg } from "node:os";
import { Worker } from "node:worker_threads";
import { formatDuration } from "../config/duration.js";
import type { Logger } from "../log.js";
import { EMPTY_METRICS, type CollectorError, type MetricsSummary } from "../protocol/metrics.js";
import { toDetail, toErrorCode } from "../protocol/text.js";
import type { FullStatus } from "../protocol/status.js";
import {
  DYNAMIC_COLLECTORS,
  ON_DEMAND_COLLECTORS,
  STATIC_COLLECTORS,
  type CollectorName,
  type ThreadReply,
  type ThreadRequest,
} from "./collectors.js";
import { MAX_FRAME_BYTES } from "../protocol/messages.js";
import { fitStatus, fullStatus, summarize, type Readings } from "./summary.js";

// Under tsx (development) the thread is the .ts source; built, it is the .js next to this file.
const THREAD_URL = new URL(`./collector-thread${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);
const PING_TIMEOUT_MS = 1000;

interface PendingCall {
  name: CollectorName | "ping";
  started: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** The thread that runs systeminformation, and the messages to and from it. Knows nothing of timeouts. */
class CollectorThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, PendingCall>();
  private nextId = 1;
  private dead = false;

  constructor(timeoutMs: number, onExit: (err: Error) => void) {
    this.worker = new Worker(THREAD_URL, { workerData: { timeoutMs } });
    this.worker.unref();
    this.worker.on("message", (reply: ThreadReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.kind === "pong") p.resolve(true);
      else if (reply.ok) p.resolve(reply.value);
      else p.reject(Object.assign(new Error(reply.error), { code: reply.code }));
    });
    const fail = (err: Error) => {
      if (this.dead) return;
      this.dead = true;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      onExit(err);
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`collector thread exited (${code})`)));
  }

  call(name: CollectorName): Promise<unknown> {
    return this.post({ kind: "call", id: this.nextId++, name }, name);
  }

  async ping(timeoutMs: number): Promise<boolean> {
    const answer = this.post({ kind: "ping", id: this.nextId++ }, "ping").then(() => true, () => false);
    return Promise.race([answer, sleep(timeoutMs).then(() => false)]);
  }

  /** The call that has waited longest: the thread runs calls in order, so in a blocked thread, the one that blocked it. */
  oldestPending(): CollectorName | undefined {
    let oldest: PendingCall | undefined;
    for (const p of this.pending.values()) if (p.name !== "ping" && (!oldest || p.started < oldest.started)) oldest = p;
    return oldest?.name as CollectorName | undefined;
  }

  terminate(): void {
    this.dead = true;
    for (const p of this.pending.values()) p.reject(new ThreadReplaced());
    this.pending.clear();
    void this.worker.terminate();
  }

  private post(req: ThreadRequest, name: PendingCall["name"]): Promise<unknown> {
    if (this.dead) return Promise.reject(new Error("collector thread is gone"));
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { name, started: performance.now(), resolve, reject });
      this.worker.postMessage(req);
    });
  }
}

/** A call cut short because its thread was replaced: not the collector's failure; it runs again next cycle. */
class ThreadReplaced extends Error {
  constructor() {
    super("collector thread replaced");
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export interface CollectorOptions {
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
  /** How long a collector that wedged its thread is left out before it is tried again. */
  quarantineMs?: number;
}

/**
 * Gathers system status off the heartbeat path. Static facts once (retried until they succeed), the rest on a
 * timer. Each collector runs single-flight: while one call is out, no second one starts, however long the first
 * takes. A call that outlives the timeout is reported as an error; if the thread itself stops answering (a
 * synchronous hang inside systeminformation), the collector that hung it is quarantined and the thread replaced.
 * Heartbeats read `summary()`, which never waits.
 */
export class Collector {
  private thread: CollectorThread;
  private readonly readings: Readings = {};
  private readonly readAt = new Map<CollectorName, number>();
  private readonly errors = new Map<CollectorName, CollectorError>();
  private readonly inflight = new Map<CollectorName, Promise<void>>();
  private readonly quarantinedUntil = new Map<CollectorName, number>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private latest: MetricsSummary = EMPTY_METRICS;

  constructor(private readonly options: CollectorOptions) {
    this.thread = this.newThread();
  }

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      await this.refresh([...this.missingStatic(), ...DYNAMIC_COLLECTORS]);
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.options.intervalMs);
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.thread.terminate();
  }

  /** The latest summary, for a heartbeat. Never waits. */
  summary(): MetricsSummary {
    return this.latest;
  }

  /** Collects everything now (joining calls already out) and returns the full status, within the timeout. */
  async snapshot(): Promise<FullStatus> {
    await this.refresh([...this.missingStatic(), ...DYNAMIC_COLLECTORS, ...ON_DEMAND_COLLECTORS]);
    const status = fullStatus(this.fresh(), {
      hostname: hostname(),
      loadavg: loadavg(),
      collectedAt: new Date(),
      errors: [...this.errors.values()].map((e) => ({ source: e.collector, code: e.code })),
    });
    // Room is left for the response envelope around the status.
    return fitStatus(status, MAX_FRAME_BYTES - 1024);
  }

  private missingStatic(): CollectorName[] {
    return STATIC_COLLECTORS.filter((n) => this.readings[n] === undefined);
  }

  private newThread(): CollectorThread {
    const thread: CollectorThread = new CollectorThread(this.options.timeoutMs, (err) => {
      if (this.stopped || thread !== this.thread) return;
      this.options.log.warn({ err: err.message }, "collector thread died; starting a new one");
      this.thread = this.newThread();
    });
    return thread;
  }

  private async refresh(names: CollectorName[]): Promise<void> {
    const work = Promise.all(names.map((name) => this.collect(name)));
    // The thread bounds each call by the timeout and answers pings between them; a thread that stays silent
    // past a timeout plus a ping is blocked inside a call.
    const watchdog = setInterval(() => {
      void this.thread.ping(PING_TIMEOUT_MS).then((alive) => {
        if (!alive) this.replaceWedgedThread();
      });
    }, this.options.timeoutMs + PING_TIMEOUT_MS);
    try {
      await work;
    } finally {
      clearInterval(watchdog);
    }
    this.latest = summarize(this.fresh(), loadavg()[0] ?? 0, [...this.errors.values()]);
  }

  private collect(name: CollectorName): Promise<void> {
    const until = this.quarantinedUntil.get(name);
    if (until !== undefined) {
      if (performance.now() < until) return Promise.resolve();
      this.quarantinedUntil.delete(name);
    }
    let call = this.inflight.get(name);
    if (!call) {
      call = this.thread
        .call(name)
        .then(
          (value) => {
            (this.readings as Record<string, unknown>)[name] = value;
            this.readAt.set(name, performance.now());
            this.clearError(name);
          },
          (err: Error & { code?: unknown }) => {
            if (!(err instanceof ThreadReplaced)) this.setError(name, toErrorCode(err.code, "FAILED"), err.message);
          },
        )
        .finally(() => this.inflight.delete(name));
      this.inflight.set(name, call);
    }
    return call;
  }

  private replaceWedgedThread(): void {
    if (this.stopped) return;
    const culprit = this.thread.oldestPending();
    const quarantineMs = this.options.quarantineMs ?? 5 * 60_000;
    if (culprit) {
      this.quarantinedUntil.set(culprit, performance.now() + quarantineMs);
      this.setError(culprit, "HUNG", `hung the collector thread; skipped for ${formatDuration(quarantineMs)}`);
    }
    this.options.log.warn({ culprit }, "collector thread stopped answering; replacing it");
    const old = this.thread;
    this.thread = this.newThread();
    old.terminate();
  }

  /** Readings younger than three collection periods; older ones would show a past state as current. */
  private fresh(): Readings {
    const maxAge = 3 * this.options.intervalMs + this.options.timeoutMs;
    const now = performance.now();
    const out: Readings = {};
    for (const [name, at] of this.readAt) {
      const isStatic = (STATIC_COLLECTORS as readonly string[]).includes(name);
      if (isStatic || now - at <= maxAge) (out as Record<string, unknown>)[name] = this.readings[name];
    }
    return out;
  }

  /** The heartbeat carries the collector, the code and a short detail; the full message is logged here. */
  private setError(name: CollectorName, code: string, message: string): void {
    const detail = toDetail(message);
    const was = this.errors.get(name);
    if (was?.code !== code || was.detail !== detail) this.options.log.warn({ collector: name, code, err: message }, "collector failed");
    this.errors.set(name, { collector: name, code, detail });
  }

  private clearError(name: CollectorName): void {
    if (this.errors.delete(name)) this.options.log.info({ collector: name }, "collector recovered");
  }
}

