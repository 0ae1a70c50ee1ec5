import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  ErrorCode,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type InitializeRequest,
  type InitializeResult,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCRequest,
  type LoggingLevel,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Backoff } from "../worker/backoff.js";
import { classify } from "./failure.js";
import { InFlight } from "./ids.js";
import { LinkLost, ManagerLink } from "./link.js";

/** The `logger` of the bridge's own MCP log notifications, so a client can tell them from the manager's. */
export const BRIDGE_LOGGER = "mcp-fleet-bridge";

const LEVELS: readonly LoggingLevel[] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

export interface BridgeOptions {
  /** Where the manager's /mcp is now: the --manager URL, or the next one announced on mDNS. */
  locate: () => Promise<URL>;
  fetch: FetchLike;
  log: Logger;
  backoff: Backoff;
  /** How long the client's initialize waits for a manager that is not reachable yet, before it is answered with an error. */
  firstConnectWaitMs: number;
  pingIntervalMs?: number;
}

interface Forwarded {
  clientId: RequestId;
  method: string;
  params: JSONRPCRequest["params"];
  generation: number;
}

interface Asked {
  serverId: RequestId;
  generation: number;
}

/**
 * MCP on stdio, forwarded message by message to the manager's /mcp (a transport-level proxy, docs/architecture.md):
 * what the client and the manager say to each other passes through unchanged but for request ids, so tools,
 * resources, progress, cancellation, log notifications and elicitation work as they would directly.
 *
 * When the session is lost the stdio side stays open: requests are answered with an error saying so, and a new
 * session is opened with the client's own initialize params, its log level and its subscriptions.
 */
export class StdioBridge {
  private link: ManagerLink | null = null;
  private generation = 0;
  private up = false;
  private stopped = false;
  private init: InitializeRequest["params"] | null = null;
  private initialized = false;
  private readonly subscriptions = new Set<string>();
  private logLevel: LoggingLevel | null = null;
  private url: URL | null = null;
  private downWhy = "not connected yet";
  private retryAt = 0;
  private wake: (() => void) | null = null;
  private readonly forwarded = new InFlight<Forwarded>();
  private readonly asked = new InFlight<Asked>();
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private readonly done: Promise<void>;

  constructor(
    private readonly stdio: Transport,
    private readonly o: BridgeOptions,
  ) {
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }

  /** Serves until the client closes stdio (resolves) or the manager refuses our certificate (rejects). */
  async run(): Promise<void> {
    this.stdio.onmessage = (m) => this.fromClient(m);
    this.stdio.onerror = (err) => this.o.log.warn({ err: errorMessage(err) }, "stdio: a message from the client could not be read");
    this.stdio.onclose = () => void this.stop("stdio closed");
    await this.stdio.start();
    return this.done;
  }

  async stop(why: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    this.o.log.info({ why }, "bridge stopping");
    await this.link?.close();
    this.settle.resolve();
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    void this.link?.close();
    this.settle.reject(err);
  }

  // ---- client → manager

  private fromClient(m: JSONRPCMessage): void {
    if (isJSONRPCRequest(m)) return m.method === "initialize" ? void this.initialize(m) : this.forward(m);
    if (isJSONRPCNotification(m)) return this.notificationFromClient(m);
    // An answer to a request of the manager's (an elicitation): back to the session that asked, if it still exists.
    const asked = this.asked.take(m.id);
    if (!asked || asked.generation !== this.generation || !this.up) return;
    this.sendToManager({ ...m, id: asked.serverId });
  }

  private forward(m: JSONRPCRequest): void {
    if (!this.up || !this.link) return this.answerError(m.id, this.unreachable());
    const id = this.forwarded.add({ clientId: m.id, method: m.method, params: m.params, generation: this.generation });
    this.o.log.debug({ method: m.method, id }, "request forwarded");
    this.link.send({ ...m, id }).catch((err: unknown) => {
      // Lost: `lost` has answered it already (or is about to, with everything else in flight).
      if (err instanceof LinkLost) return;
      if (this.forwarded.take(id)) this.answerError(m.id, `the manager refused the request: ${classify(err).message}`);
    });
  }

  private notificationFromClient(m: JSONRPCNotification): void {
    // Each session is initialized by the bridge itself, so the client's one is already said.
    if (m.method === "notifications/initialized" || !this.up) return;
    if (m.method === "notifications/cancelled") {
      const requestId = (m.params as { requestId?: RequestId } | undefined)?.requestId;
      const id = this.forwarded.find((f) => f.clientId === requestId && f.generation === this.generation);
      if (id === undefined) return;
      this.forwarded.take(id);
      return this.sendToManager({ ...m, params: { ...m.params, requestId: id } });
    }
    this.sendToManager(m);
  }

  private sendToManager(m: JSONRPCMessage): void {
    this.link?.send(m).catch((err: unknown) => {
      if (!(err instanceof LinkLost)) this.o.log.warn({ err: errorMessage(err) }, "a message to the manager was refused");
    });
  }

  // ---- manager → client

  private fromManager(m: JSONRPCMessage, generation: number): void {
    if (generation !== this.generation) return;
    if (isJSONRPCResultResponse(m) || isJSONRPCErrorResponse(m)) {
      const f = this.forwarded.take(m.id);
      if (!f) return;
      if (isJSONRPCResultResponse(m)) this.remember(f);
      return this.toClient({ ...m, id: f.clientId });
    }
    if (isJSONRPCRequest(m)) {
      const id = this.asked.add({ serverId: m.id, generation });
      return this.toClient({ ...m, id });
    }
    if (m.method === "notifications/cancelled") {
      const requestId = (m.params as { requestId?: RequestId } | undefined)?.requestId;
      const id = this.asked.find((a) => a.serverId === requestId && a.generation === generation);
      if (id === undefined) return;
      this.asked.take(id);
      return this.toClient({ ...m, params: { ...m.params, requestId: id } });
    }
    this.toClient(m);
  }

  /** What a new session must be told again: the client's log level and its subscriptions. */
  private remember(f: Forwarded): void {
    const params = (f.params ?? {}) as { uri?: unknown; level?: unknown };
    if (f.method === "resources/subscribe" && typeof params.uri === "string") this.subscriptions.add(params.uri);
    if (f.method === "resources/unsubscribe" && typeof params.uri === "string") this.subscriptions.delete(params.uri);
    if (f.method === "logging/setLevel" && LEVELS.includes(params.level as LoggingLevel)) this.logLevel = params.level as LoggingLevel;
  }

  private toClient(m: JSONRPCMessage): void {
    this.stdio.send(m).catch((err: unknown) => this.o.log.warn({ err: errorMessage(err) }, "stdio: a message to the client could not be written"));
  }

  private answerError(id: RequestId, message: string): void {
    this.toClient({ jsonrpc: "2.0", id, error: { code: ErrorCode.ConnectionClosed, message } });
  }

  private unreachable(): string {
    const where = this.url ? `the manager at ${this.url.href}` : "the manager";
    const wait = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
    return `${where} is unreachable (${this.downWhy}); reconnecting${wait > 0 ? `, next attempt in ${wait} s` : ""}`;
  }

  /** An MCP log notification of the bridge's own, at or above the level the client asked for. */
  private notify(level: LoggingLevel, message: string, data: Record<string, unknown> = {}): void {
    if (!this.initialized) return;
    if (this.logLevel && LEVELS.indexOf(level) < LEVELS.indexOf(this.logLevel)) return;
    this.toClient({ jsonrpc: "2.0", method: "notifications/message", params: { level, logger: BRIDGE_LOGGER, data: { message, manager: this.url?.href, ...data } } });
  }

  // ---- sessions

  private async initialize(m: JSONRPCRequest): Promise<void> {
    if (this.init) return this.answerError(m.id, "already initialized");
    this.init = m.params as InitializeRequest["params"];
    const first = this.connect();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), this.o.firstConnectWaitMs)));
    try {
      const outcome = await Promise.race([first, waited]);
      if (outcome === "late") {
        this.answerError(m.id, this.unreachable());
        first.catch((err: unknown) => this.fail(err));
        return;
      }
      this.toClient({ jsonrpc: "2.0", id: m.id, result: outcome });
      this.initialized = true;
    } catch (err) {
      this.answerError(m.id, errorMessage(err));
      this.fail(err);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Opens a session, trying again with jittered, capped backoff for as long as the manager is away; rejects only
   * when trying again cannot help (our certificate refused, the manager's not of our fleet).
   */
  private async connect(): Promise<InitializeResult> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) throw new Error("the bridge is stopping");
      const generation = ++this.generation;
      let link: ManagerLink | null = null;
      try {
        this.url = await this.o.locate();
        link = new ManagerLink({
          url: this.url,
          fetch: this.o.fetch,
          log: this.o.log,
          pingIntervalMs: this.o.pingIntervalMs,
          onmessage: (message) => this.fromManager(message, generation),
          onlost: (why) => this.lost(generation, why),
        });
        const result = await link.open(this.init!);
        await this.restore(link);
        if (link.isLost) throw new Error("the session was lost while it was being restored");
        this.link = link;
        this.up = true;
        this.o.backoff.reset();
        this.o.log.info({ manager: this.url.href, attempt, subscriptions: this.subscriptions.size }, "bridge connected to the manager");
        return result;
      } catch (err) {
        await link?.close();
        const failure = classify(err);
        if (failure.permanent) {
          throw new FleetError("E_CERT", `${this.url ? `the manager at ${this.url.href}` : "the manager"} cannot be used with these certificates: ${failure.message}`);
        }
        this.downWhy = failure.message;
        const delay = this.o.backoff.next();
        this.retryAt = performance.now() + delay;
        this.o.log.warn({ manager: this.url?.href, attempt, err: failure.message, retryInMs: delay }, "the manager is unreachable; trying again");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
  }

  private async restore(link: ManagerLink): Promise<void> {
    if (this.logLevel) await link.request("logging/setLevel", { level: this.logLevel });
    for (const uri of [...this.subscriptions]) {
      try {
        await link.request("resources/subscribe", { uri });
      } catch (err) {
        if (err instanceof LinkLost) throw err;
        this.subscriptions.delete(uri);
        this.notify("warning", `the subscription to ${uri} could not be renewed: ${errorMessage(err)}`, { uri });
      }
    }
  }

  private lost(generation: number, why: string): void {
    if (generation !== this.generation || !this.up || this.stopped) return;
    this.up = false;
    this.downWhy = why;
    this.retryAt = 0;
    const link = this.link;
    this.link = null;
    void link?.close();
    this.o.log.warn({ manager: this.url?.href, why, inFlight: this.forwarded.size }, "lost the manager's session; reconnecting");
    for (const [, f] of this.forwarded.drain(generation)) this.answerError(f.clientId, `${this.unreachable()}: the request may or may not have been carried out`);
    for (const [id] of this.asked.drain(generation)) {
      this.toClient({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "the manager's session ended" } });
    }
    this.notify("warning", `lost the connection to the manager (${why}); reconnecting`, { reason: why });
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    let result: InitializeResult;
    try {
      result = await this.connect();
    } catch (err) {
      return this.fail(err);
    }
    this.notify("info", "reconnected to the manager: a new session, with the same subscriptions", { subscriptions: [...this.subscriptions] });
    // A restarted manager may be a newer version: tell the client to read the lists again where it can.
    const caps = result.capabilities;
    if (caps.tools?.listChanged) this.toClient({ jsonrpc: "2.0", method: "notifications/tools/list_changed" });
    if (caps.resources?.listChanged) this.toClient({ jsonrpc: "2.0", method: "notifications/resources/list_changed" });
    if (caps.prompts?.listChanged) this.toClient({ jsonrpc: "2.0", method: "notifications/prompts/list_changed" });
  }
}
