import { isIP } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { WebSocket } from "ws";
import type { Logger } from "../log.js";
import { CloseCode, closeReason, PERMANENT_CLOSE_CODES } from "../protocol/close-codes.js";
import {
  CONNECT_TIMEOUT_MS,
  decodeManagerMessage,
  encode,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  type GoodbyeReason,
  type Hello,
  type Progress,
  type Request,
  type WorkerMessage,
} from "../protocol/messages.js";
import type { MetricsSummary } from "../protocol/metrics.js";
import { toDetail } from "../protocol/text.js";
import { Backoff } from "./backoff.js";
import { classifyError, classifyHttpStatus, describeClose, type Failure } from "./failures.js";

/** What a request handler may use while it works: progress frames for this request, and the session's end. */
export interface RequestContext {
  /** Sends a progress frame for this request (output chunks of a running action, for one). */
  progress(p: Omit<Progress, "type" | "id">): void;
  /** Aborted when the session the request came on ends: whatever it started must stop (docs/actions.md). */
  signal: AbortSignal;
}

export type RequestHandler = (method: string, params: unknown, context: RequestContext) => Promise<unknown>;

/** Test-only: the protocol version this agent claims to speak. */
export const FAULT_PROTOCOL_ENV = "MCP_FLEET_FAULT_PROTOCOL";

export interface LinkOptions {
  /**
   * Where to connect next (wss://host:port; the worker endpoint path is added if none is given): a fixed
   * --manager URL, or the next manager heard on mDNS. Null while none is known.
   */
  nextTarget: () => string | null;
  tls: ConnectionOptions;
  hello: Omit<Hello, "type" | "protocol">;
  metrics: () => MetricsSummary;
  /** The hash of this host's action catalogue, sent in hello and every heartbeat; undefined: none. */
  catalog?: () => string | undefined;
  onRequest: RequestHandler;
  /**
   * The server at `url` is not this fleet's manager (its certificate failed verification). With mDNS that is the
   * announcer's fault, not a reason to wait: the caller sets it aside and the next candidate is tried soon.
   * Without this hook (a fixed --manager) the link waits the full backoff, since the same refusal would repeat.
   */
  onManagerRejected?: (url: string) => void;
  /** A reason not to connect right now (this worker's own certificate is not valid); checked before each attempt. */
  holdOff?: () => string | null;
  log: Logger;
  backoff?: Backoff;
  /** A ping this often keeps track of a manager that might vanish without closing (host gone, cable cut). */
  pingIntervalMs?: number;
  /**
   * How long the manager may stay silent before this worker gives up on the session. Longer than a manager's
   * plausible pause (a 60 s stall, a GC storm): a worker that left during a pause would be seen as lost when the
   * manager resumed, a false alarm. A manager that crashes or stops closes the socket, which is noticed at once.
   */
  silentManagerMs?: number;
  welcomeTimeoutMs?: number;
}

/** Milliseconds from `now` to the first `last + k·interval` (k ≥ 1) after `now`. */
export function nextInPhase(last: number, interval: number, now: number): number {
  return interval - (Math.max(0, now - last) % interval);
}

export function workerEndpoint(url: string): string {
  const u = new URL(url);
  if (u.protocol !== "wss:") throw new Error(`manager URL must start with wss:// (got ${u.protocol}//)`);
  if (u.pathname === "/" || u.pathname === "") u.pathname = "/worker";
  return u.toString();
}

/**
 * A manager that cannot be reached (restarting, a link down) comes back by itself, and a refused or unanswered
 * connection costs it nothing: retrying at most this long apart brings the worker back within seconds of it. With
 * the full 30 s ceiling, five quick refusals during a one-second restart left a worker a further 16 s away.
 */
const UNREACHABLE_RETRY_CAP_MS = 8000;

/**
 * One persistent session to the manager, re-established forever with full-jitter backoff. The manager sets the
 * heartbeat pace in `welcome`; heartbeats never wait for anything but the timer.
 */
export class Link {
  private ws: WebSocket | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private seq = 0;
  private lastHeartbeatAt = 0;
  private stopping = false;
  private readonly backoff: Backoff;
  /** The protocol spoken; a fault-injection variable lets tests play a worker from another release. */
  private readonly protocol = Number(process.env[FAULT_PROTOCOL_ENV] ?? PROTOCOL_VERSION);
  private url = "";
  private readonly log: Logger;
  /** The last failure logged, so a repeat of it is logged quietly. */
  private lastFailure: string | null = null;
  /** When anything last came from the manager (a message or a pong). */
  private lastHeard = 0;
  /**
   * The last TLS session per manager URL. Offered on the next connect, it lets a manager that keeps its ticket
   * keys (across a restart, too) resume instead of doing a full handshake: cheaper for both in a reconnect storm.
   */
  private readonly tlsSessions = new Map<string, Buffer>();
  /** Aborted when the current session ends, so the requests it brought stop with it. */
  private session = new AbortController();
  /** Resolves when the current socket has closed; used by stop(). */
  private closed: Promise<void> = Promise.resolve();
  heartbeatIntervalMs: number | null = null;

  constructor(private options: LinkOptions) {
    this.backoff = options.backoff ?? new Backoff();
    this.log = options.log;
  }

  start(): void {
    this.connect();
  }

  /** A manager was heard of: if the link is idle between attempts, try now instead of after the backoff. */
  poke(): void {
    if (this.ws !== null || this.stopping) return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.connect();
  }

  /** Say goodbye, close, and stop reconnecting. Resolves once the socket is closed (or after 2 s). */
  async stop(reason: GoodbyeReason): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopTimers();
    const ws = this.ws;
    if (!ws) return;
    if (ws.readyState === WebSocket.OPEN) {
      if (this.heartbeatIntervalMs !== null) this.send({ type: "goodbye", reason });
      ws.close(1000, "goodbye");
    } else {
      ws.terminate();
    }
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    await Promise.race([this.closed, timeout]);
    ws.terminate();
  }

  /** New TLS material (a renewed certificate); used from the next attempt on. */
  setTls(tls: ConnectionOptions): void {
    this.options.tls = tls;
    // A resumed session would present the old certificate again.
    this.tlsSessions.clear();
  }

  private connect(): void {
    if (this.stopping) return;
    const hold = this.options.holdOff?.();
    if (hold) {
      // Dialling with a certificate that cannot pass would only make the manager log refusals: wait, then look again.
      if (this.lastFailure !== hold) this.log.error({ retryInMs: 30_000 }, `not connecting: ${hold}`);
      this.lastFailure = hold;
      this.reconnectTimer = setTimeout(() => this.connect(), 30_000);
      return;
    }
    const target = this.options.nextTarget();
    if (target === null) {
      if (this.lastFailure !== "no manager") this.log.warn("no usable manager heard on mDNS yet; waiting for one to announce itself");
      this.lastFailure = "no manager";
      this.reconnectTimer = setTimeout(() => this.connect(), Math.max(1000, this.backoff.next()));
      return;
    }
    this.url = workerEndpoint(target);
    const attempted = target;
    let tlsDone = false;
    let resumed = false;
    let failure: Failure | null = null;
    const url = this.url;
    const ws = new WebSocket(this.url, {
      ...this.options.tls,
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      // Our own connector, to learn whether TLS finished before a failure (see classifyError).
      createConnection: (opts: ConnectionOptions) => {
        const host = opts.host ?? "";
        const socket: TLSSocket = tlsConnect({
          ...opts,
          servername: opts.servername ?? (isIP(host) ? undefined : host),
          session: this.tlsSessions.get(url),
        });
        socket.setKeepAlive(true, 10_000);
        socket.once("secureConnect", () => {
          tlsDone = true;
          resumed = socket.isSessionReused();
        });
        socket.on("session", (session: Buffer) => {
          if (this.tlsSessions.size > 16) this.tlsSessions.clear();
          this.tlsSessions.set(url, session);
        });
        return socket;
      },
    } as ConstructorParameters<typeof WebSocket>[2]);
    this.ws = ws;
    let markClosed!: () => void;
    this.closed = new Promise((resolve) => (markClosed = resolve));

    ws.on("open", () => {
      this.send({ type: "hello", protocol: this.protocol, ...this.options.hello, catalog: this.options.catalog?.() });
      this.welcomeTimer = setTimeout(() => ws.close(CloseCode.WELCOME_TIMEOUT, "no welcome in time"), this.options.welcomeTimeoutMs ?? 10_000);
    });
    ws.on("unexpected-response", (_req, res) => {
      failure = classifyHttpStatus(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on("error", (err) => {
      failure ??= classifyError(err as Error & { code?: string }, tlsDone);
    });
    ws.on("pong", () => (this.lastHeard = performance.now()));
    ws.on("message", (data, isBinary) => {
      this.lastHeard = performance.now();
      const decoded = decodeManagerMessage(data, isBinary);
      if (!decoded.ok) {
        this.log.error({ err: decoded.error }, "manager sent a message this worker does not understand");
        ws.close(CloseCode.PROTOCOL_ERROR, decoded.error.slice(0, 100));
        return;
      }
      const msg = decoded.message;
      if (msg.type === "welcome" && msg.protocol !== this.protocol) {
        const why = `manager speaks ${msg.protocol}, worker speaks ${this.protocol}`;
        failure = { kind: "protocol", message: `unsupported protocol version: ${why}` };
        ws.close(CloseCode.UNSUPPORTED_PROTOCOL, closeReason(CloseCode.UNSUPPORTED_PROTOCOL, why));
        this.backoff.toCap();
        return;
      }
      if (msg.type === "welcome") {
        if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
        this.heartbeatIntervalMs = msg.heartbeatIntervalMs;
        this.backoff.reset();
        this.lastFailure = null;
        this.log.info(
          { url: this.url, session: msg.sessionId, resumed, heartbeatIntervalMs: msg.heartbeatIntervalMs, managerVersion: msg.managerVersion },
          "connected to manager",
        );
        this.startTimers();
      } else if (msg.type === "settings") {
        if (this.heartbeatIntervalMs === null || msg.heartbeatIntervalMs === this.heartbeatIntervalMs) return;
        this.log.info({ from: this.heartbeatIntervalMs, to: msg.heartbeatIntervalMs }, "heartbeat interval changed by the manager");
        this.heartbeatIntervalMs = msg.heartbeatIntervalMs;
        this.keepPhase(msg.heartbeatIntervalMs);
        this.startPings(msg.heartbeatIntervalMs);
      } else {
        void this.answer(msg);
      }
    });
    const session = (this.session = new AbortController());
    ws.on("close", (code, reasonBuf) => {
      markClosed();
      session.abort();
      this.stopTimers();
      const wasConnected = this.heartbeatIntervalMs !== null;
      this.heartbeatIntervalMs = null;
      if (this.ws === ws) this.ws = null;
      if (this.stopping) return;
      const reason = reasonBuf.toString();
      // A failure seen before the close (TLS, HTTP, network) says more than the close code that follows it.
      const f: Failure = failure ?? describeClose(code, reason);
      if (PERMANENT_CLOSE_CODES.has(code) || f.kind === "certificate_refused") this.backoff.toCap();
      if (f.kind === "certificate_refused" || f.kind === "manager_rejected") this.tlsSessions.delete(url);
      if (f.kind === "manager_rejected") {
        if (this.options.onManagerRejected) this.options.onManagerRejected(attempted);
        else this.backoff.toCap();
      }
      const delay = this.backoff.next(f.kind === "unreachable" ? UNREACHABLE_RETRY_CAP_MS : undefined);
      // The same failure over and over is logged once at warn, then at debug, so a long outage does not flood logs.
      const repeated = !wasConnected && this.lastFailure === f.message;
      this.lastFailure = f.message;
      this.log[repeated ? "debug" : wasConnected ? "warn" : "error"](
        { kind: f.kind, code, retryInMs: delay, backoffCeilingMs: this.backoff.ceilingMs, url: this.url },
        wasConnected ? `lost the manager: ${f.message}` : `cannot connect: ${f.message}`,
      );
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private startTimers(): void {
    const interval = this.heartbeatIntervalMs!;
    this.heartbeat();
    this.heartbeatTimer = setInterval(() => this.heartbeat(), interval);
    this.lastHeard = performance.now();
    this.startPings(interval);
  }

  /**
   * Pings follow the pace, like heartbeats: a worker that joined while the fleet was small would otherwise keep
   * pinging at the small fleet's rate, and at 10,000 workers the manager's pongs are a fifth of its CPU.
   */
  private startPings(interval: number): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    const pingEvery = this.options.pingIntervalMs ?? Math.max(5000, 2 * interval);
    const giveUpAfter = this.options.silentManagerMs ?? Math.max(90_000, 3 * pingEvery);
    let lastCheck = performance.now();
    this.pingTimer = setInterval(() => {
      const now = performance.now();
      // This process was paused (SIGSTOP, suspend): the silence was ours, not the manager's.
      if (now - lastCheck > 2 * pingEvery) this.lastHeard = now;
      lastCheck = now;
      if (now - this.lastHeard > giveUpAfter) {
        this.log.warn({ silentMs: Math.round(now - this.lastHeard) }, "manager stopped answering pings; reconnecting");
        this.ws?.terminate();
        return;
      }
      this.ws?.ping();
    }, pingEvery);
  }

  private stopTimers(): void {
    for (const t of [this.heartbeatTimer, this.pingTimer, this.welcomeTimer]) if (t) clearTimeout(t);
    this.heartbeatTimer = this.pingTimer = this.welcomeTimer = null;
  }

  private heartbeat(): void {
    this.lastHeartbeatAt = performance.now();
    this.send({ type: "heartbeat", seq: this.seq++, metrics: this.options.metrics(), catalog: this.options.catalog?.() });
  }

  /**
   * A new pace reaches the whole fleet in the same instant. Restarting the timer from now would line every worker
   * up on it, and the manager would get the fleet's heartbeats in one burst each interval. Instead the next
   * heartbeat comes at the first multiple of the new interval after this worker's last one, so the phases that
   * the welcomes spread out stay spread out.
   */
  private keepPhase(interval: number): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeat();
      this.heartbeatTimer = setInterval(() => this.heartbeat(), interval);
    }, nextInPhase(this.lastHeartbeatAt, interval, performance.now()));
  }

  private async answer(req: Request): Promise<void> {
    const ws = this.ws;
    const context: RequestContext = {
      progress: (p) => {
        if (this.ws === ws) this.send({ type: "progress", id: req.id, ...p });
      },
      signal: this.session.signal,
    };
    try {
      const result = await this.options.onRequest(req.method, req.params, context);
      // An answer belongs to the session that asked: a new session has other ids.
      if (this.ws !== ws) return;
      this.send({ type: "response", id: req.id, result });
    } catch (err) {
      const e = err as Error & { code?: unknown };
      if (this.ws !== ws) return;
      const code = typeof e.code === "string" && /^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(e.code) ? e.code : "error";
      this.send({ type: "response", id: req.id, error: { code, message: toDetail(String(e.message)) } });
    }
  }

  private send(message: WorkerMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encode(message));
  }
}
