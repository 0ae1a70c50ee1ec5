import { randomBytes } from "node:crypto";
import type { WebSocket } from "ws";
import type { Registry } from "../core/registry.js";
import { FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import type { CertificateFacts, Identity } from "../pki/identity.js";
import { CloseCode, closeCodeName, closeReason, describeCloseCode, type AppCloseCode } from "../protocol/close-codes.js";
import { Correlator, type CallOptions } from "../protocol/correlator.js";
import { decodeWorkerMessage, encode, SUPPORTED_PROTOCOLS, type Hello, type Labels, type ManagerMessage } from "../protocol/messages.js";
import type { CollectorError } from "../protocol/metrics.js";
import { VERSION } from "../version.js";
import type { LogThrottle } from "../log-throttle.js";
import { closeCause } from "../metrics/causes.js";
import type { ManagerMetrics } from "../metrics/sink.js";
import { TokenBucket, type SessionLimits } from "./limits.js";

export interface SessionContext {
  registry: Registry;
  log: Logger;
  heartbeatIntervalMs: () => number;
  limits: SessionLimits;
  throttle: LogThrottle;
  /** Called once hello is accepted; closes the session this one replaces, if any. */
  onAccepted: (session: WorkerSession) => void;
  onEnded: (session: WorkerSession) => void;
  /** The worker named a catalogue hash (in hello, and in every heartbeat that carries one). */
  onCatalog?: (workerId: string, hash: string) => void;
  /** Where the sessions it closes for a cause are counted. */
  metrics?: Pick<ManagerMetrics, "refused">;
}

type Phase = "awaiting-hello" | "open" | "closed";

/** The certificate's labels were given by the operator's token: a worker cannot say otherwise about those keys. */
export function mergeLabels(own: Labels, fromCert: Labels): Labels {
  return Object.keys(fromCert).length === 0 ? own : { ...own, ...fromCert };
}

/**
 * One authenticated worker socket: hello → welcome → heartbeats, requests both ways, goodbye. Anything off-script
 * closes this session only, with a specific code and a log line.
 */
export class WorkerSession {
  readonly sessionId = randomBytes(6).toString("hex");
  private phase: Phase = "awaiting-hello";
  private saidGoodbye = false;
  private closedBy: { code: number; detail: string } | null = null;
  // A manager holds 10,000 of these, so a session keeps only what it uses (docs/performance.md, "Memory"): the
  // certificate's serial and expiry rather than its facts, no child logger, no correlator until the first request,
  // no hello timer once the hello is in.
  private helloTimer: NodeJS.Timeout | null;
  private goodbyeTimer: NodeJS.Timeout | null = null;
  private correlator: Correlator | null = null;
  private lastBeatAt = performance.now();
  private readonly bucket: TokenBucket;
  /** The client certificate's serial number (lower-case hex), as the CRL lists it. */
  readonly serialNumber: string;
  /**
   * The certificate the worker holds now: the one it connected with, until a renewal over this session hands it
   * a newer one (the socket keeps the old one until the next connection).
   */
  held: { serialNumber: string; notBefore: number; notAfter: number };
  /** Labels the connection's certificate carries: they outrank the hello's, and a renewal carries them over. */
  readonly certLabels: Labels;
  /** The hello said the worker can take a renewed certificate over this session. */
  renewable = false;
  /** The collector errors last logged for this session, so a repeat is not logged again. */
  private collectorErrors: readonly CollectorError[] = [];
  /** The catalogue hash the worker last named. */
  catalog: string | null = null;

  constructor(
    private readonly ws: WebSocket,
    readonly identity: Identity,
    cert: CertificateFacts,
    readonly address: string | null,
    /** Whether TLS resumed an earlier session (no full handshake): worth knowing in a reconnect storm. */
    private readonly resumed: boolean,
    private readonly ctx: SessionContext,
  ) {
    this.serialNumber = cert.serialNumber;
    this.held = { serialNumber: cert.serialNumber, notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime() };
    this.certLabels = cert.labels;
    this.helloTimer = setTimeout(() => this.close(CloseCode.HELLO_TIMEOUT), ctx.limits.helloTimeoutMs);
    this.bucket = new TokenBucket(ctx.limits.messagesPerSecond, ctx.limits.messageBurst);
    ws.on("message", (data, isBinary) => this.onMessage(data, isBinary));
    ws.on("close", (code, reason) => this.onClose(code, reason.toString()));
    // ws reports an oversized frame (WS_ERR_UNSUPPORTED_MESSAGE_LENGTH) here, then closes with 1009.
    ws.on("error", (err) => {
      const code = (err as { code?: string }).code;
      ctx.throttle.warn(`socket-${code}`, { ...this.tag, err: err.message, code }, "worker socket error");
    });
  }

  get workerId(): string {
    return this.identity.id;
  }

  get isOpen(): boolean {
    return this.phase === "open";
  }

  request(method: string, params: unknown, options: CallOptions): Promise<unknown> {
    if (this.phase !== "open") return Promise.reject(new FleetError("E_NOT_CONNECTED", `worker ${this.workerId} is not connected`));
    this.correlator ??= new Correlator((req) => this.send(req));
    return this.correlator.call(method, params, options);
  }

  /** Close with an application code; the reason names the cause and, optionally, the detail. */
  close(code: AppCloseCode | 1000 | 1001, detail?: string): void {
    if (this.phase === "closed" || this.closedBy) return;
    const reason = code >= 4000 ? closeReason(code as AppCloseCode, detail) : (detail ?? describeCloseCode(code));
    this.closedBy = { code, detail: reason };
    const cause = closeCause(code);
    if (cause) this.ctx.metrics?.refused(cause);
    const fields = { ...this.tag, code, cause: closeCodeName(code) ?? describeCloseCode(code), detail };
    // 1001 goes to every session when the manager stops; the manager logs that once, not 10,000 times.
    if (code === 1001) this.ctx.log.debug(fields, "closing worker session");
    else if (code === 1000) this.ctx.log.info(fields, "closing worker session");
    else this.ctx.throttle.warn(`close-${code}`, fields, "closing worker session");
    this.ws.close(code, reason);
    // A peer that never answers the close handshake must not keep the socket (ws waits 30 s otherwise).
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  /** Tells the worker the new heartbeat pace. */
  pace(heartbeatIntervalMs: number): void {
    if (this.phase === "open") this.send({ type: "settings", heartbeatIntervalMs });
  }

  terminate(): void {
    this.ws.terminate();
  }

  /**
   * Collector errors are kept by collector and code; the worker's detail text goes to the log only, when it
   * changes, and through the throttle, so a worker cannot make the log its megaphone either.
   */
  private logCollectorErrors(errors: readonly CollectorError[]): void {
    const was = this.collectorErrors;
    let same = was.length === errors.length;
    for (let i = 0; same && i < errors.length; i++) {
      same = was[i]!.collector === errors[i]!.collector && was[i]!.code === errors[i]!.code && was[i]!.detail === errors[i]!.detail;
    }
    if (same) return;
    this.collectorErrors = errors;
    if (errors.length > 0) this.ctx.throttle.warn("worker-collector-errors", { ...this.tag, errors }, "worker reports collector errors");
  }

  /** The fields every log line about this session carries. */
  private get tag(): { worker: string; session: string } {
    return { worker: this.identity.id, session: this.sessionId };
  }

  private stopHelloTimer(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }

  private send(message: ManagerMessage): void {
    this.ws.send(encode(message));
    // A peer that stops reading would make us hold everything we send it; past the cap it is cut off.
    if (this.ws.bufferedAmount > this.ctx.limits.sendBufferBytes) {
      this.close(CloseCode.SLOW_CONSUMER, `${this.ws.bufferedAmount} bytes unread`);
      this.ws.terminate();
    }
  }

  private onMessage(data: unknown, isBinary: boolean): void {
    if (this.closedBy) return;
    if (!this.bucket.take()) {
      this.close(CloseCode.RATE_LIMITED, `over ${this.ctx.limits.messagesPerSecond} messages/s`);
      return;
    }
    const decoded = decodeWorkerMessage(data, isBinary);
    if (!decoded.ok) {
      if (decoded.otherProtocol !== undefined && this.phase === "awaiting-hello") {
        this.stopHelloTimer();
        return this.close(CloseCode.UNSUPPORTED_PROTOCOL, `worker speaks ${decoded.otherProtocol}, manager speaks ${SUPPORTED_PROTOCOLS.join(",")}`);
      }
      this.close(CloseCode.PROTOCOL_ERROR, decoded.error);
      return;
    }
    const msg = decoded.message;
    if (this.phase === "awaiting-hello") {
      if (msg.type !== "hello") return this.close(CloseCode.PROTOCOL_ERROR, `expected hello, got ${msg.type}`);
      return this.onHello(msg);
    }
    switch (msg.type) {
      case "hello":
        return this.close(CloseCode.PROTOCOL_ERROR, "hello sent twice");
      case "heartbeat": {
        if (msg.metrics.errors.length > 0 || this.collectorErrors.length > 0) this.logCollectorErrors(msg.metrics.errors);
        this.ctx.registry.heartbeat(this.workerId, this.sessionId, msg.seq, msg.metrics);
        // Every time, not only when it changes: a catalogue the manager failed to read is asked for again.
        if (msg.catalog !== undefined) this.catalogNamed(msg.catalog);
        if (this.ctx.log.isLevelEnabled("trace")) {
          const now = performance.now();
          this.ctx.log.trace({ ...this.tag, seq: msg.seq, gapMs: Math.round(now - this.lastBeatAt) }, "heartbeat");
          this.lastBeatAt = now;
        }
        return;
      }
      case "response":
        // The worker's error text is for the operator: tools report the code only (docs/protocol.md).
        if (msg.error) this.ctx.throttle.warn("worker-error-answer", { ...this.tag, id: msg.id, code: msg.error.code, detail: msg.error.message }, "worker answered a request with an error");
        if (!this.correlator?.handleResponse(msg)) this.ctx.log.debug({ ...this.tag, id: msg.id }, "response to no pending request");
        return;
      case "progress":
        this.correlator?.handleProgress(msg);
        return;
      case "goodbye":
        if (this.saidGoodbye) return;
        this.saidGoodbye = true;
        this.ctx.registry.goodbye(this.workerId, this.sessionId, msg.reason);
        this.ctx.log.info({ ...this.tag, reason: msg.reason }, "worker said goodbye");
        // The agent closes right after its goodbye; a session left open after it would hold a socket that the
        // silent-session sweep no longer looks at (the worker is offline).
        this.goodbyeTimer = setTimeout(() => this.close(1000, "closed after goodbye"), this.ctx.limits.goodbyeGraceMs);
        return;
    }
  }

  private onHello(hello: Hello): void {
    this.stopHelloTimer();
    if (!SUPPORTED_PROTOCOLS.includes(hello.protocol)) {
      return this.close(
        CloseCode.UNSUPPORTED_PROTOCOL,
        `worker speaks ${hello.protocol}, manager speaks ${SUPPORTED_PROTOCOLS.join(",")}`,
      );
    }
    if (hello.id !== this.identity.id) {
      return this.close(CloseCode.IDENTITY_MISMATCH, `hello claims "${hello.id}", certificate is "${this.identity.id}"`);
    }
    this.phase = "open";
    this.renewable = hello.renewable === true;
    // Welcome first: once the registry calls a worker healthy, it must already have been let in. Otherwise a
    // manager paused in between leaves a worker waiting for a welcome that is frozen here, and it gives up.
    this.send({
      type: "welcome",
      protocol: hello.protocol,
      sessionId: this.sessionId,
      heartbeatIntervalMs: this.ctx.heartbeatIntervalMs(),
      managerVersion: VERSION,
    });
    this.ctx.registry.sessionOpened({
      id: hello.id,
      sessionId: this.sessionId,
      hostname: hello.hostname,
      agentVersion: hello.agentVersion,
      labels: mergeLabels(hello.labels, this.certLabels),
      platform: hello.platform,
      address: this.address,
      // Only a renewing worker's warning follows its certificate's life (certWarnThresholdMs): a hand-issued one
      // is nobody's to renew, so it warns at --cert-warn however short it was issued.
      certNotBefore: this.renewable ? this.held.notBefore : null,
      certNotAfter: this.held.notAfter,
      certSerial: this.serialNumber,
    });
    // After the registry made this session current, so the replaced session's close is ignored there.
    this.ctx.onAccepted(this);
    if (hello.catalog !== undefined) this.catalogNamed(hello.catalog);
    this.ctx.log.info({ ...this.tag, hostname: hello.hostname, agentVersion: hello.agentVersion, address: this.address, resumed: this.resumed }, "worker connected");
  }

  private catalogNamed(hash: string): void {
    this.catalog = hash;
    this.ctx.onCatalog?.(this.workerId, hash);
  }

  private onClose(code: number, reason: string): void {
    this.stopHelloTimer();
    if (this.goodbyeTimer) clearTimeout(this.goodbyeTimer);
    const wasOpen = this.phase === "open";
    this.phase = "closed";
    this.correlator?.rejectAll(new FleetError("E_NOT_CONNECTED", `worker ${this.workerId} disconnected`));
    // A manager that is shutting down closed this itself (1001): that says nothing about the worker's health.
    if (wasOpen && !this.saidGoodbye && this.closedBy?.code !== 1001) {
      // The worker's own close reason is its text, not the manager's: the registry (and so the tools) get the code.
      const detail = this.closedBy
        ? `closed by manager: ${this.closedBy.detail} (${this.closedBy.code})`
        : `${describeCloseCode(code)} (${code})`;
      this.ctx.registry.sessionClosed(this.workerId, this.sessionId, detail);
    }
    this.ctx.log.debug({ ...this.tag, code, reason }, "worker session closed");
    this.ctx.onEnded(this);
  }
}
