/**
 * Fleet simulator: one child process of `npm run bench` playing many workers. Each simulated worker has its own
 * certificate and holds one real mutual-TLS WebSocket speaking the real protocol (hello, welcome, heartbeats at the
 * pace the manager sets, pings like the agent's link, full-jitter reconnects). Against the bare baseline server
 * it sends the same hello and heartbeats at a fixed pace without waiting for a welcome.
 *
 * Driven by its parent over the IPC channel; every reply is one message. It never outlives its parent.
 */
import { readFileSync } from "node:fs";
import { connect, createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import { WebSocket } from "ws";
import { catalogHash, CatalogEntry, RunParams, type RunResult } from "../../src/protocol/actions.js";
import { CONNECT_TIMEOUT_MS, MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../../src/protocol/messages.js";
import { Backoff } from "../../src/worker/backoff.js";
import { nextInPhase } from "../../src/worker/link.js";
import { metrics } from "./sim-metrics.js";
import type { SimCommand, SimReply, SimStats } from "./sim-protocol.js";

const now = () => performance.timeOrigin + performance.now();

let url = "";
let mode: "manager" | "baseline" = "manager";
let fixedIntervalMs = 5000;
let resume = true;
let stopping = false;
const failures = new Map<string, number>();
let heartbeatsSent = 0;
// TLS handshakes this simulator's sockets finished: more than the sessions opened is work the server did twice.
let handshakes = 0;

/**
 * Every simulated worker offers one action, `noop`, which "prints" 1 KiB and succeeds at once: the fan-out bench
 * measures the manager's side of a job (scheduling, correlation, kept output), not the programs.
 */
const NOOP = CatalogEntry.parse({
  name: "noop",
  kind: "command",
  description: "Does nothing and prints 1 KiB (bench simulator)",
  destructive: false,
  params: {},
  timeoutMs: 60_000,
  concurrency: 4,
});
const CATALOG = catalogHash([NOOP]);
const NOOP_OUTPUT = "x".repeat(1023) + "\n";
let invocationsRun = 0;

function answerRequest(ws: WebSocket, msg: { id?: string | number; method?: string; params?: unknown }): void {
  const respond = (body: { result: unknown } | { error: { code: string; message: string } }) =>
    ws.send(JSON.stringify({ type: "response", id: msg.id, ...body }));
  if (msg.method === "actions.list") return respond({ result: { hash: CATALOG, total: 1, entries: [NOOP], next: null } });
  if (msg.method === "actions.cancel") return respond({ result: { found: false } });
  const run = msg.method === "actions.run" ? RunParams.safeParse(msg.params) : null;
  if (!run?.success || run.data.action !== "noop") return respond({ error: { code: "unknown_action", message: "simulated worker" } });
  const startedAt = new Date().toISOString();
  ws.send(JSON.stringify({ type: "progress", id: msg.id, progress: NOOP_OUTPUT.length, output: { stream: "stdout", data: NOOP_OUTPUT } }));
  const stream = (bytes: number, tail: string) => ({ tail, bytes, kept: bytes });
  const result: RunResult = {
    status: "succeeded",
    exitCode: 0,
    signal: null,
    startedAt,
    endedAt: new Date().toISOString(),
    durationMs: 0,
    stdout: stream(NOOP_OUTPUT.length, NOOP_OUTPUT),
    stderr: stream(0, ""),
  };
  invocationsRun++;
  respond({ result });
}

class SimWorker {
  private ws: WebSocket | null = null;
  private session: Buffer | undefined;
  private hb: NodeJS.Timeout | null = null;
  private ping: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private seq = 0;
  private readonly backoff = new Backoff();
  interval = 0;
  welcomedAt = 0;
  lastHeartbeatAt = 0;
  resumed = false;
  frozen = false;
  killed = false;

  constructor(
    readonly id: string,
    private readonly ctx: SecureContext,
  ) {}

  get open(): boolean {
    return this.welcomedAt > 0 && this.ws?.readyState === WebSocket.OPEN;
  }

  connect(onSettled?: () => void): void {
    if (stopping || this.killed) return;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        onSettled?.();
      }
    };
    this.welcomedAt = 0;
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      createConnection: (opts: { host?: string; port?: number | string }) => {
        const socket: TLSSocket = connect({
          host: opts.host,
          port: Number(opts.port),
          secureContext: this.ctx,
          session: resume ? this.session : undefined,
          // The simulator trusts the fleet CA (in its context); the manager-role check is the agent's, not under test.
          checkServerIdentity: () => undefined,
        });
        socket.on("session", (s: Buffer) => (this.session = s));
        socket.once("secureConnect", () => {
          handshakes++;
          this.resumed = socket.isSessionReused();
        });
        return socket;
      },
    } as ConstructorParameters<typeof WebSocket>[2]);
    this.ws = ws;
    ws.on("open", () => {
      ws.send(
        JSON.stringify({
          type: "hello",
          protocol: PROTOCOL_VERSION,
          id: this.id,
          hostname: `${this.id}.sim`,
          agentVersion: "0.1.0",
          labels: { sim: "1" },
          platform: { os: "linux", arch: "x64", release: "6.1.0" },
          catalog: CATALOG,
        }),
      );
      if (mode === "baseline") this.welcomed(fixedIntervalMs, settle);
    });
    ws.on("message", (data) => {
      if (mode === "baseline") return;
      const msg = JSON.parse(String(data)) as { type: string; heartbeatIntervalMs?: number; id?: string | number; method?: string; params?: unknown };
      if (msg.type === "welcome") this.welcomed(msg.heartbeatIntervalMs!, settle);
      else if (msg.type === "settings" && msg.heartbeatIntervalMs !== this.interval) this.repace(msg.heartbeatIntervalMs!);
      else if (msg.type === "request") answerRequest(ws, msg);
    });
    ws.on("error", (err: Error & { code?: string }) => {
      const key = err.code ?? err.message.slice(0, 60);
      failures.set(key, (failures.get(key) ?? 0) + 1);
    });
    ws.on("close", () => {
      this.stopTimers();
      if (this.ws === ws) this.ws = null;
      settle();
      if (stopping || this.killed) return;
      this.retry = setTimeout(connectSoon, this.backoff.next(), this);
    });
  }

  private welcomed(interval: number, settle: () => void): void {
    this.welcomedAt = now();
    this.backoff.reset();
    this.startHeartbeats(interval);
    this.startPings(interval);
    settle();
  }

  private startHeartbeats(interval: number): void {
    this.interval = interval;
    if (this.hb) clearInterval(this.hb);
    this.beat();
    this.hb = setInterval(() => this.beat(), interval);
  }

  /** As the agent's link does: a ping every two intervals (at least 5 s) to notice a vanished manager. */
  private startPings(interval: number): void {
    if (this.ping) clearInterval(this.ping);
    this.ping = setInterval(() => this.ws?.ping(), Math.max(5000, 2 * interval));
  }

  /** As the agent's link does: the new pace keeps this worker's phase (see Link.keepPhase in src/worker/link.ts), and pings follow it. */
  private repace(interval: number): void {
    this.interval = interval;
    if (!this.frozen) this.startPings(interval);
    if (this.hb) clearTimeout(this.hb);
    this.hb = setTimeout(() => {
      this.beat();
      this.hb = setInterval(() => this.beat(), interval);
    }, nextInPhase(this.lastHeartbeatAt ? this.lastHeartbeatAt - performance.timeOrigin : 0, interval, performance.now()));
  }

  private beat(): void {
    if (this.frozen || this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "heartbeat", seq: this.seq++, metrics: metrics(this.seq), catalog: CATALOG }));
    this.lastHeartbeatAt = now();
    heartbeatsSent++;
  }

  private stopTimers(): void {
    if (this.hb) clearInterval(this.hb);
    if (this.ping) clearInterval(this.ping);
    this.hb = this.ping = null;
  }

  /** As a SIGKILL would: the socket is gone at once, with no close frame and no goodbye. */
  kill(): number {
    this.killed = true;
    this.stopTimers();
    const at = now();
    (this.ws as unknown as { _socket?: TLSSocket })._socket?.destroy();
    return at;
  }

  /** As a SIGSTOP would: the socket stays up, nothing more is sent. */
  freeze(): number {
    this.frozen = true;
    if (this.ping) clearInterval(this.ping);
    return this.lastHeartbeatAt;
  }

  forgetSession(): void {
    this.session = undefined;
  }

  stop(): void {
    this.stopTimers();
    if (this.retry) clearTimeout(this.retry);
    this.ws?.terminate();
  }
}

let workers: SimWorker[] = [];

/**
 * Reconnects fall due together after a restart: thousands of backoff timers in one turn of this one loop, each
 * connect about 1 ms of CPU (the session's decode, a TLS socket, the upgrade request). Run in one turn, they stalled
 * this process for 4–5 s while the manager's replies to handshakes already begun waited unread, and the manager
 * timed those handshakes out; real workers, each on its own host, do not hold up one another's handshakes. So due
 * connects start a slice at a time, and the loop reads its sockets between slices.
 */
const CONNECT_SLICE_MS = 10;
const due: SimWorker[] = [];
let dueHead = 0;
let draining = false;

function connectSoon(w: SimWorker): void {
  due.push(w);
  if (!draining) {
    draining = true;
    setImmediate(connectDue);
  }
}

function connectDue(): void {
  const end = performance.now() + CONNECT_SLICE_MS;
  while (dueHead < due.length && performance.now() < end) due[dueHead++]!.connect();
  if (dueHead < due.length) return void setImmediate(connectDue);
  due.length = dueHead = 0;
  draining = false;
}

function stats(since = 0): SimStats {
  let open = 0;
  let resumed = 0;
  let lastWelcomeAt = 0;
  const intervals = new Map<number, number>();
  for (const w of workers) {
    if (!w.open || w.welcomedAt < since) continue;
    open++;
    if (w.resumed) resumed++;
    lastWelcomeAt = Math.max(lastWelcomeAt, w.welcomedAt);
    intervals.set(w.interval, (intervals.get(w.interval) ?? 0) + 1);
  }
  return {
    total: workers.length,
    open,
    resumed,
    lastWelcomeAt,
    heartbeatsSent,
    handshakes,
    invocationsRun,
    intervals: Object.fromEntries(intervals),
    failures: Object.fromEntries(failures),
  };
}

/** Opens every connection with at most `concurrency` handshakes in flight: a rollout, not a storm. */
async function openAll(concurrency: number): Promise<void> {
  let next = 0;
  await new Promise<void>((resolve) => {
    let inFlight = 0;
    const pump = () => {
      while (inFlight < concurrency && next < workers.length) {
        inFlight++;
        workers[next++]!.connect(() => {
          inFlight--;
          if (next >= workers.length && inFlight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

function reply(message: SimReply): void {
  process.send?.(message);
}

process.on("disconnect", () => process.exit(0));
process.on("message", (raw) => {
  const cmd = raw as SimCommand;
  switch (cmd.op) {
    case "start": {
      url = cmd.url;
      mode = cmd.mode;
      fixedIntervalMs = cmd.intervalMs;
      resume = cmd.resume;
      const all = JSON.parse(readFileSync(cmd.certFile, "utf8")) as { ca: string; workers: Array<{ id: string; cert: string; key: string }> };
      workers = all.workers
        .slice(cmd.from, cmd.to)
        .map((w) => new SimWorker(w.id, createSecureContext({ ca: all.ca, cert: w.cert, key: w.key, minVersion: "TLSv1.2" })));
      const started = now();
      void openAll(cmd.concurrency).then(() => reply({ op: "started", ms: now() - started, stats: stats() }));
      return;
    }
    case "stats":
      return reply({ op: "stats", stats: stats(cmd.since) });
    case "kill":
      return reply({ op: "killed", id: workers[cmd.index]!.id, at: workers[cmd.index]!.kill() });
    case "freeze":
      return reply({ op: "frozen", id: workers[cmd.index]!.id, lastHeartbeatAt: workers[cmd.index]!.freeze() });
    case "resume-sessions":
      resume = cmd.resume;
      if (!resume) for (const w of workers) w.forgetSession();
      return reply({ op: "ok" });
    case "quit":
      stopping = true;
      for (const w of workers) w.stop();
      return reply({ op: "ok" });
  }
});
reply({ op: "ready" });
