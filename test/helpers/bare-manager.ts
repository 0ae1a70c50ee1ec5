import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";
import type { CertSet } from "./fleet.js";

export interface Answer {
  result?: unknown;
  error?: { code: string; message: string };
  progress: Array<Record<string, unknown>>;
}

/**
 * A manager reduced to the protocol: it holds the fleet's real manager certificate, welcomes the first worker,
 * and sends it whatever requests a test writes, with none of the manager's own checks in between. What the
 * worker then refuses, it refuses by itself.
 */
export class BareManager {
  hello: Record<string, unknown> | undefined;
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { answer: Answer; resolve: (a: Answer) => void }>();
  private welcomed: Promise<void>;

  private constructor(
    private readonly server: Server,
    private readonly wss: WebSocketServer,
  ) {
    this.welcomed = new Promise((resolve) => {
      wss.on("connection", (ws) => {
        this.ws = ws;
        ws.on("message", (data) => {
          const msg = JSON.parse(String(data)) as Record<string, unknown> & { type: string; id?: number };
          if (msg.type === "hello") {
            this.hello = msg;
            ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, sessionId: "bare", heartbeatIntervalMs: 1000, managerVersion: "0.0.0" }));
            resolve();
          } else if (msg.type === "progress" && typeof msg.id === "number") {
            this.pending.get(msg.id)?.answer.progress.push(msg);
          } else if (msg.type === "response" && typeof msg.id === "number") {
            const p = this.pending.get(msg.id);
            if (!p) return;
            this.pending.delete(msg.id);
            p.resolve({ ...p.answer, result: msg.result, error: msg.error as Answer["error"] });
          }
        });
      });
    });
  }

  static async start(certs: CertSet): Promise<BareManager> {
    const server = createServer({
      ca: readFileSync(certs.ca),
      cert: readFileSync(certs.managerCert),
      key: readFileSync(certs.managerKey),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const wss = new WebSocketServer({ server, path: "/worker", perMessageDeflate: false });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new BareManager(server, wss);
  }

  get url(): string {
    return `wss://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once a worker has said hello (bounded by the caller's test timeout). */
  connected(): Promise<void> {
    return this.welcomed;
  }

  request(method: string, params: unknown, timeoutMs = 10_000): Promise<Answer> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        answer: { progress: [] },
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
      });
      this.ws!.send(JSON.stringify({ type: "request", id, method, params }));
    });
  }

  /** Ends the session as a broken link would (no close handshake); what was asked in it gets no answer. */
  dropSession(): void {
    this.ws?.terminate();
    this.ws = undefined;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
