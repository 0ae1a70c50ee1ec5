import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { LogThrottle } from "../log-throttle.js";
import type { FleetMcp } from "../mcp/server.js";
import { principalOf, type Principal } from "../mcp/principal.js";
import { isJoinSocket, peerCertificate } from "../tls/contexts.js";
import type { FrontDoor } from "./front-door.js";
import { McpSessionTable, type McpSessionLimits } from "./mcp-sessions.js";
import { peerAddress, WORKER_PATH } from "./upgrade.js";

/** Operators' and viewers' MCP clients reach the manager here, over Streamable HTTP on the worker port. */
export const MCP_PATH = "/mcp";

export interface McpHttpOptions extends McpSessionLimits {
  /**
   * Origins a browser page may call from (exact, e.g. "https://console.example"). A request carrying any other
   * Origin is refused: a page on a rebound DNS name must not reach the manager through an operator's browser.
   */
  allowedOrigins: string[];
  /** A new MCP server for one session, speaking for `principal`. */
  serve: (principal: Principal) => FleetMcp;
}

export interface McpHttpParts extends McpHttpOptions {
  fleet: string;
  door: Pick<FrontDoor, "upgraded">;
  isRevoked: (serialNumber: string) => boolean;
  throttle: LogThrottle;
  log: Logger;
  now?: () => number;
}

interface Live {
  transport: StreamableHTTPServerTransport;
  mcp: FleetMcp;
  principal: Principal;
}

type Verdict = { principal: Principal } | { status: number; kind: string; why: string; fields: Record<string, unknown> };

// A JSON-RPC error body, as the SDK's client reports it: the refusal reads the same in every MCP client.
function refuse(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32001, message }, id: null }));
}

const REAP_MIN_MS = 50;
const REFUSAL_LOG_MS = 60_000;
/** Causes remembered at most; past it the memory starts afresh (the log throttle still bounds the lines). */
const REFUSAL_KEYS = 1000;
const REAP_MAX_MS = 30_000;

/**
 * The manager's `/mcp` endpoint: one SDK Streamable HTTP transport and one MCP server per session, for clients
 * whose verified certificate is an operator's or viewer's of this fleet. It shares the manager's HTTPS server (the
 * manager's `request` listener calls `handle`); the TLS gate has already destroyed connections without a valid
 * certificate, except join connections, which are refused here.
 */
export class McpHttpEndpoint {
  private readonly sessions: McpSessionTable<Live>;
  /** What each socket's certificate was found to be, on its first request (the gate's facts are taken once). */
  private readonly verdicts = new WeakMap<TLSSocket, Verdict>();
  private readonly origins: Set<string>;
  private readonly refusalsLogged = new Map<string, number>();
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly p: McpHttpParts) {
    this.sessions = new McpSessionTable(p, p.now);
    this.origins = new Set(p.allowedOrigins.map((o) => o.toLowerCase().replace(/\/+$/, "")));
    const every = Math.min(REAP_MAX_MS, Math.max(REAP_MIN_MS, p.idleTimeoutMs / 4));
    this.reaper = setInterval(() => this.reap(), every);
    this.reaper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as TLSSocket;
    const verdict = this.verdictOf(socket);
    // A refused certificate stays refused: the connection ends with the answer.
    if ("status" in verdict) return refuse(res, verdict.status, verdict.why, { connection: "close" });
    const { principal } = verdict;
    const address = peerAddress(socket);
    // Checked on every request: a connection, and a session's stream, can outlast a CRL reload or the certificate.
    const revoked = this.p.isRevoked(principal.serialNumber);
    if (revoked || Date.now() > principal.notAfter) {
      const why = revoked ? "revoked" : "expired";
      this.p.throttle.warn(`mcp-${why}`, { address, operator: principal.id, serial: principal.serialNumber }, `MCP refused: certificate ${why}`);
      refuse(res, 403, `certificate serial ${principal.serialNumber} is ${why}`);
      return void socket.destroy();
    }
    // From its first accepted request on, keep-alive and the session's streams keep this connection's time.
    this.p.door.upgraded(socket);
    const origin = req.headers.origin;
    if (origin !== undefined && !this.origins.has(origin.toLowerCase().replace(/\/+$/, ""))) {
      if (this.firstRefusal(`origin|${address}|${origin}`)) {
        this.p.throttle.warn("mcp-origin", { address, origin, operator: principal.id }, "MCP refused: Origin not allowed (--allowed-origins)");
      }
      return refuse(res, 403, `Origin ${JSON.stringify(origin)} is not allowed; the manager lists the allowed ones in --allowed-origins`);
    }
    const sessionId = req.headers["mcp-session-id"];
    if (typeof sessionId === "string") return this.continueSession(sessionId, principal, req, res);
    if (req.method !== "POST") return refuse(res, 400, "no mcp-session-id header: an MCP session starts with an initialize POST");
    void this.startSession(principal, address, req, res);
  }

  private verdictOf(socket: TLSSocket): Verdict {
    const known = this.verdicts.get(socket);
    if (known) return known;
    const verdict = this.judge(socket);
    this.verdicts.set(socket, verdict);
    if ("status" in verdict) {
      const address = peerAddress(socket);
      if (this.firstRefusal(`${verdict.kind}|${address}|${String(verdict.fields.serial ?? "")}`)) {
        this.p.throttle.warn(verdict.kind, { address, ...verdict.fields }, `MCP refused: ${verdict.why}`);
      }
    }
    return verdict;
  }

  /**
   * Whether this cause from this address was not yet logged in the last REFUSAL_LOG_MS: a client that retries
   * (over new connections, too) is one line, and the log still names every address refused.
   */
  private firstRefusal(key: string): boolean {
    const now = performance.now();
    const last = this.refusalsLogged.get(key);
    if (last !== undefined && now - last < REFUSAL_LOG_MS) return false;
    if (this.refusalsLogged.size >= REFUSAL_KEYS) this.refusalsLogged.clear();
    this.refusalsLogged.set(key, now);
    return true;
  }

  private judge(socket: TLSSocket): Verdict {
    const fleet = this.p.fleet;
    const wanted = `an operator or viewer certificate of fleet "${fleet}" is required (mcp-fleet certs issue --role operator <name>)`;
    if (isJoinSocket(socket)) return { status: 401, kind: "mcp-no-cert", why: `no client certificate: ${wanted}`, fields: {} };
    const cert = peerCertificate(socket);
    // The TLS gate destroyed such sockets already; judged again so no refactoring can open the door.
    if (!cert) return { status: 401, kind: "mcp-no-cert", why: `no verified client certificate: ${wanted}`, fields: {} };
    const now = Date.now();
    if (now > cert.notAfter.getTime() || now < cert.notBefore.getTime()) {
      return { status: 403, kind: "mcp-expired", why: `the client certificate is not valid now (until ${cert.notAfter.toISOString()})`, fields: { serial: cert.serialNumber } };
    }
    const principal = principalOf(cert, fleet);
    if (principal) return { principal };
    const id = cert.identity;
    const what = id ? `${id.role} "${id.id}" of fleet "${id.fleet}"` : "no mcp-fleet identity";
    const hint = id?.role === "worker" && id.fleet === fleet ? `; a worker certificate connects at ${WORKER_PATH}` : "";
    return { status: 403, kind: "mcp-wrong-role", why: `the client certificate is ${what}: ${wanted}${hint}`, fields: { certificate: what, serial: cert.serialNumber } };
  }

  private continueSession(id: string, principal: Principal, req: IncomingMessage, res: ServerResponse): void {
    const live = this.sessions.get(id, principal.fingerprint256);
    // Another certificate's session id is as unknown as a made-up one: it says nothing of that session.
    if (!live) return refuse(res, 404, "unknown or closed MCP session: start a new one with initialize");
    this.sessions.begin(id);
    res.once("close", () => this.sessions.end(id));
    live.transport.handleRequest(req, res).catch((err: unknown) => this.failed(err, res, principal));
  }

  private async startSession(principal: Principal, address: string | null, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closed) return refuse(res, 503, "the manager is shutting down");
    if (!this.sessions.reserve()) {
      const max = this.sessions.limits.maxSessions;
      this.p.throttle.warn("mcp-too-many", { address, operator: principal.id, sessions: this.sessions.size, max }, "MCP session refused: too many sessions (--max-mcp-sessions)");
      return refuse(res, 503, `too many MCP sessions open at once (limit ${max}, --max-mcp-sessions); close one or try again later`, { "retry-after": "10" });
    }
    let reserved = true;
    const release = () => {
      if (reserved) this.sessions.release();
      reserved = false;
    };
    let live: Live | undefined;
    try {
      const mcp = this.p.serve(principal);
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => {
          release();
          this.sessions.add(id, live!, principal);
          this.sessions.begin(id);
          res.once("close", () => this.sessions.end(id));
          this.p.log.info({ session: id, operator: principal.id, role: principal.role, address, sessions: this.sessions.size }, "MCP session opened");
        },
      });
      live = { transport, mcp, principal };
      transport.onclose = () => this.ended(transport, mcp, principal);
      await mcp.server.connect(transport);
      await transport.handleRequest(req, res);
      // Not an initialize (the transport answered 400): nothing to keep.
      if (transport.sessionId === undefined) await mcp.close();
    } catch (err) {
      this.failed(err, res, principal);
      if (live) await live.mcp.close().catch(() => {});
    } finally {
      release();
    }
  }

  /** A session's transport closed (DELETE, idle, shutdown): its MCP server and its listeners go with it. */
  private ended(transport: StreamableHTTPServerTransport, mcp: FleetMcp, principal: Principal): void {
    const id = transport.sessionId;
    if (id === undefined || !this.sessions.remove(id)) return;
    this.p.log.info({ session: id, operator: principal.id, sessions: this.sessions.size }, "MCP session closed");
    mcp.close().catch((err: unknown) => this.p.log.debug({ err: errorMessage(err) }, "closing an MCP server failed"));
  }

  private failed(err: unknown, res: ServerResponse, principal: Principal): void {
    this.p.log.error({ err: errorMessage(err), operator: principal.id }, "MCP request failed");
    refuse(res, 500, "internal error");
  }

  /** Closes the sessions idle past the timeout, and those whose certificate expired. */
  reap(): void {
    for (const s of this.sessions.idle()) {
      this.p.log.info({ session: s.id, operator: s.principal.id, idleMs: Math.round(s.idleMs) }, "MCP session idle: closing it (--mcp-idle-timeout)");
      void s.value.transport.close();
    }
    const now = Date.now();
    for (const s of this.sessions.matching((p) => now > p.notAfter)) {
      this.p.log.warn({ session: s.id, operator: s.value.principal.id }, "MCP session closed: its certificate expired");
      void s.value.transport.close();
    }
  }

  /** Ends the sessions of certificates a reloaded CRL revokes; their next request is refused too. */
  revoked(isRevoked: (serialNumber: string) => boolean): void {
    for (const s of this.sessions.matching((p) => isRevoked(p.serialNumber))) {
      this.p.log.warn({ session: s.id, operator: s.value.principal.id }, "MCP session closed: its certificate was revoked");
      void s.value.transport.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reaper);
    await Promise.all(this.sessions.matching(() => true).map((s) => s.value.transport.close()));
  }
}
