import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  InitializeResultSchema,
  isJSONRPCErrorResponse,
  isJSONRPCResultResponse,
  type InitializeRequest,
  type InitializeResult,
  type JSONRPCMessage,
} from "@modelcontextprotocol/sdk/types.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { classify, isSessionGone, isUnreachable } from "./failure.js";

export interface LinkOptions {
  url: URL;
  fetch: FetchLike;
  log: Logger;
  /** Every message from the manager that is not an answer to the link's own requests. */
  onmessage: (message: JSONRPCMessage) => void;
  /** Called once, when the session is found gone (its event stream ended, a request got no answer, a 404). */
  onlost: (why: string) => void;
  /** How often the link asks the manager for a ping, to notice a manager that went silent without closing. */
  pingIntervalMs?: number;
  requestTimeoutMs?: number;
}

/** Thrown by `send` when the message could not be delivered because the session is gone. */
export class LinkLost extends Error {}

interface Own {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One MCP session over Streamable HTTP with the manager, opened with the stdio client's own initialize params.
 * The bridge's own requests (initialize, re-subscriptions, pings) carry string ids ("mcp-fleet-bridge-N") and are
 * answered here; the client's requests carry the bridge's numeric ids, so the two never meet.
 *
 * A session does not come back: once lost, the bridge opens a new link. The SDK's own SSE reconnection is off,
 * because it would resume a session that a restarted manager no longer knows.
 */
export class ManagerLink {
  private transport: StreamableHTTPClientTransport | null = null;
  private readonly own = new Map<string, Own>();
  private nextOwn = 1;
  private lostWhy: string | null = null;
  private closing = false;
  private pinger: NodeJS.Timeout | null = null;

  constructor(private readonly o: LinkOptions) {}

  get isLost(): boolean {
    return this.lostWhy !== null;
  }

  /** Initializes the session; rejects with what went wrong (see failure.ts for what is worth retrying). */
  async open(params: InitializeRequest["params"]): Promise<InitializeResult> {
    const transport = new StreamableHTTPClientTransport(this.o.url, {
      fetch: this.watched(),
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
    });
    this.transport = transport;
    transport.onmessage = (m) => this.received(m);
    transport.onerror = (err) => this.o.log.debug({ err: errorMessage(err) }, "manager link: transport error");
    await transport.start();
    const result = InitializeResultSchema.parse(await this.request("initialize", params));
    transport.setProtocolVersion(result.protocolVersion);
    // Its 202 makes the transport open the session's event stream (GET), which `watched` keeps an eye on.
    await transport.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    const every = this.o.pingIntervalMs ?? 30_000;
    this.pinger = setInterval(() => void this.request("ping", {}).catch((err: unknown) => this.lose(`no answer to a ping: ${errorMessage(err)}`)), every);
    this.pinger.unref();
    return result;
  }

  /** A request of the bridge's own, answered here. */
  request(method: string, params: Record<string, unknown>): Promise<unknown> {
    const id = `mcp-fleet-bridge-${this.nextOwn++}`;
    const timeoutMs = this.o.requestTimeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.own.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.own.set(id, { resolve, reject, timer });
      this.send({ jsonrpc: "2.0", id, method, params }).catch((err: unknown) => {
        clearTimeout(timer);
        this.own.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /**
   * Delivers one message. A failure to reach the manager loses the link and throws LinkLost; an HTTP refusal of
   * this one message is thrown as it is.
   */
  async send(message: JSONRPCMessage): Promise<void> {
    if (!this.transport || this.lostWhy !== null) throw new LinkLost(this.lostWhy ?? "not connected");
    try {
      await this.transport.send(message);
    } catch (err) {
      if (this.closing) throw new LinkLost("closing");
      if (isSessionGone(err) || isUnreachable(err)) {
        const why = isSessionGone(err) ? "the manager no longer knows the session" : classify(err).message;
        this.lose(why);
        throw Object.assign(new LinkLost(why), { cause: err });
      }
      throw err;
    }
  }

  /** Ends the session on the manager's side too (DELETE), as far as it is still reachable. */
  async close(): Promise<void> {
    this.closing = true;
    this.stopPinging();
    const t = this.transport;
    if (!t) return;
    if (this.lostWhy === null) await t.terminateSession().catch(() => {});
    await t.close().catch(() => {});
    this.failOwn("closing");
  }

  private received(message: JSONRPCMessage): void {
    if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && typeof message.id === "string" && this.own.has(message.id)) {
      const own = this.own.get(message.id)!;
      this.own.delete(message.id);
      clearTimeout(own.timer);
      if (isJSONRPCResultResponse(message)) own.resolve(message.result);
      else own.reject(new Error(`${message.error.message} (${message.error.code})`));
      return;
    }
    this.o.onmessage(message);
  }

  private lose(why: string): void {
    if (this.lostWhy !== null || this.closing) return;
    this.lostWhy = why;
    this.stopPinging();
    this.failOwn(why);
    void this.transport?.close().catch(() => {});
    this.o.onlost(why);
  }

  private failOwn(why: string): void {
    for (const [id, own] of this.own) {
      clearTimeout(own.timer);
      own.reject(new LinkLost(why));
      this.own.delete(id);
    }
  }

  private stopPinging(): void {
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
  }

  /**
   * The transport's fetch, watching the session's event stream: notifications arrive there, and its end (a
   * manager killed, restarted, or closing the session) is the earliest sign that the session is gone.
   */
  private watched(): FetchLike {
    return async (url, init) => {
      const isStream = (init?.method ?? "GET") === "GET";
      let res: Response;
      try {
        res = await this.o.fetch(url, init);
      } catch (err) {
        if (isStream) this.lose(`the event stream could not be opened: ${classify(err).message}`);
        throw err;
      }
      if (!isStream) return res;
      if (!res.ok || !res.body) {
        if (res.status !== 405) this.lose(`the event stream was refused (HTTP ${res.status})`);
        return res;
      }
      const body = endWatched(res.body, (err) => this.lose(err ? `the event stream broke: ${errorMessage(err)}` : "the manager ended the event stream"));
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
  }
}

/** `body`, calling `onEnd` once when it ends, breaks or is cancelled. */
function endWatched(body: ReadableStream<Uint8Array>, onEnd: (err?: unknown) => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          onEnd();
        } else controller.enqueue(value);
      } catch (err) {
        controller.error(err);
        onEnd(err);
      }
    },
    cancel(reason) {
      onEnd(reason);
      return reader.cancel(reason);
    },
  });
}
