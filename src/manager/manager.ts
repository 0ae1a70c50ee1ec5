import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { WebSocketServer, type WebSocket } from "ws";
import { systemClock, type Clock } from "../core/clock.js";
import { DEFAULT_POLICY, missedBoundMs, type HealthPolicy } from "../core/health.js";
import { pacedInterval, shouldRepace } from "../core/pace.js";
import { Registry, type HealthEvent } from "../core/registry.js";
import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import { CloseCode, closeReason, type AppCloseCode } from "../protocol/close-codes.js";
import type { CallOptions } from "../protocol/correlator.js";
import { hostname } from "node:os";
import { FleetBrowser, type Peer } from "../discovery/browser.js";
import { Publisher } from "../discovery/publisher.js";
import { fleetIdFromCa } from "../discovery/txt.js";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../protocol/messages.js";
import { METHODS, type MethodName, type MethodResult } from "../protocol/methods.js";
import { gateUnauthorized, loadTlsMaterial, managerServerOptions, peerCertificate, type TlsPaths } from "../tls/contexts.js";
import { HandshakeGate } from "./handshake-gate.js";
import { DEFAULT_LIMITS, type SessionLimits } from "./limits.js";
import { LogThrottle } from "../log-throttle.js";
import { StateKeeper } from "./persistence.js";
import { loadTicketKeys, newTicketKeys, TICKET_LIFETIME_MS, ticketKeyPath } from "./ticket-keys.js";
import { Revocations } from "./revocation.js";
import { WorkerSession } from "./session.js";

/** Workers connect here; other paths are refused, leaving room for other endpoints later. */
export const WORKER_PATH = "/worker";

export interface ManagerOptions {
  tls: TlsPaths;
  host?: string;
  port: number;
  heartbeatIntervalMs: number;
  missedHeartbeats: number;
  pressurePercent?: number;
  /** A worker whose certificate expires within this is degraded. */
  certWarnMs?: number;
  /** At most this many heartbeats a second from the whole fleet: the interval lengthens as it grows. 0: no limit. */
  heartbeatBudget?: number;
  limits?: Partial<SessionLimits>;
  historyLimit?: number;
  /** Where known workers and events are kept across restarts; none: nothing is kept. */
  stateFile?: string;
  /** After a restart, how long a known worker has to reconnect before it is unhealthy. */
  restartGraceMs?: number;
  /** A worker offline (goodbye or revoked) for longer than this is forgotten; 0: never. Default 7 days. */
  forgetOfflineAfterMs?: number;
  /** Announce on mDNS and watch worker announcements (off unless asked for: tests and embedders opt in). */
  mdns?: boolean;
  clock?: Clock;
  log: Logger;
}

export const DEFAULT_RESTART_GRACE_MS = 30_000;

// The registry's deadlines are checked this often; detection of a silent worker is late by at most this much.
const TICK_MS = 100;
const LISTEN_BACKLOG = 4096;
// The gate starts this many handshakes at once and adapts up to limits.maxHandshakes; a tick later than this by
// more than the bound means the loop is saturated (see HandshakeGate.observeLag).
const HANDSHAKES_MIN = 32;
const HANDSHAKE_LAG_BOUND_MS = 50;

/**
 * Puts the handshake gate between accepting a connection and starting its TLS handshake. A TLS server starts the
 * handshake in its own `connection` listener; that listener is taken out and called when the gate says so.
 */
function admitThroughGate(server: Server, limits: SessionLimits): HandshakeGate {
  const listeners = server.listeners("connection");
  const startTls = listeners[0] as ((socket: Socket) => void) | undefined;
  if (!startTls || listeners.length !== 1) throw new Error(`the TLS server has ${listeners.length} connection listeners, expected Node's one`);
  server.removeListener("connection", startTls);
  const gate = new HandshakeGate({
    minInFlight: Math.min(HANDSHAKES_MIN, limits.maxHandshakes),
    maxInFlight: limits.maxHandshakes,
    lagBoundMs: HANDSHAKE_LAG_BOUND_MS,
    slotMs: limits.handshakeSlotMs,
    maxWaitMs: limits.handshakeQueueMs,
  });
  // Node keeps a socket's peer address once read, so a closed socket still has its key.
  const keyOf = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  // One listener for every socket: a closure each would stay with the connection for its whole life.
  function onRawClose(this: Socket) {
    gate.finished(keyOf(this));
  }
  server.on("connection", (raw: Socket) => {
    // No peer address: the peer reset the connection before it was accepted.
    if (!raw.remoteAddress || !raw.remotePort) return void raw.destroy();
    raw.on("close", onRawClose);
    gate.arrive({ key: keyOf(raw), start: () => startTls.call(server, raw), shed: () => raw.destroy() });
  });
  // Prepended, so the slot is free before the rest of the secure-connection work.
  server.prependListener("secureConnection", (socket: TLSSocket) => gate.finished(keyOf(socket)));
  return gate;
}

export interface Manager {
  readonly registry: Registry;
  readonly port: number;
  readonly fleet: string;
  /** The id announced on mDNS, derived from the fleet CA. */
  readonly fleetId: string;
  /** Workers announcing themselves on mDNS, as last heard. Hints only: never part of the registry. */
  workerAnnouncements(): Peer[];
  /** Re-reads the CRL file (it is also watched); revoked live sessions are closed with 4004. */
  reloadCrl(reason: string): Promise<void>;
  /** Calls `listener` for every health transition; returns the function that stops it. */
  onEvent(listener: (event: HealthEvent) => void): () => void;
  /** Ask a connected worker something over its socket; the answer is validated against the method's schema. */
  request<M extends MethodName>(workerId: string, method: M, params: unknown, options: CallOptions): Promise<MethodResult<M>>;
  close(): Promise<void>;
}

/** Ends a just-upgraded socket with a code and reason; one that never answers the close is cut off. */
function refuse(ws: WebSocket, code: AppCloseCode, detail: string): void {
  ws.close(code, closeReason(code, detail));
  setTimeout(() => ws.terminate(), 2000).unref();
}

export async function startManager(options: ManagerOptions): Promise<Manager> {
  const log = options.log;
  const material = loadTlsMaterial(options.tls, "manager");
  const policy: HealthPolicy = {
    ...DEFAULT_POLICY,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    missedHeartbeats: options.missedHeartbeats,
    pressurePercent: options.pressurePercent ?? DEFAULT_POLICY.pressurePercent,
    certWarnMs: options.certWarnMs ?? DEFAULT_POLICY.certWarnMs,
  };
  const { notBefore, notAfter } = material.self;
  if (Date.now() > notAfter.getTime() || Date.now() < notBefore.getTime()) {
    // Run anyway, so the MCP client still gets answers; every worker will refuse this certificate and say why.
    log.error({ cert: options.tls.cert, notBefore, notAfter }, "this manager's certificate is not valid now; workers will refuse it");
  }
  const listeners = new Set<(event: HealthEvent) => void>();
  let keeper: StateKeeper | null = null;
  const registry = new Registry({
    clock: options.clock ?? systemClock,
    policy,
    historyLimit: options.historyLimit,
    forgetOfflineAfterMs: options.forgetOfflineAfterMs,
    onEvent: (e: HealthEvent) => {
      const level = e.to === "unhealthy" ? "warn" : "info";
      log[level]({ event: "transition", worker: e.worker, from: e.from, to: e.to, reasons: e.reasons }, "worker state changed");
      keeper?.changed();
      for (const listener of listeners) {
        try {
          listener(e);
        } catch (err) {
          log.error({ err: errorMessage(err) }, "transition listener failed");
        }
      }
    },
    onStall: (ms) => log.warn({ stalledMs: Math.round(ms) }, "manager was paused; counting worker silence from now"),
  });

  if (options.stateFile) {
    keeper = new StateKeeper(options.stateFile, registry, log);
    keeper.load(options.restartGraceMs ?? DEFAULT_RESTART_GRACE_MS);
  }

  const limits: SessionLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const throttle = new LogThrottle(log);
  // A restarted manager paces for the fleet it expects back, so the first of 10,000 returning workers are not
  // welcomed at the base interval and then slowed down one step at a time while the rest still reconnect.
  const paceFor = (connected: number) =>
    pacedInterval({ baseMs: options.heartbeatIntervalMs, budgetPerSecond: options.heartbeatBudget ?? 0, connected });
  /** The interval workers are told to keep; the health bound follows it (see repace). */
  const expectedAtStart = registry.expectedSessions();
  let paceTarget = paceFor(expectedAtStart);
  if (paceTarget !== options.heartbeatIntervalMs) {
    registry.setPolicy({ ...registry.healthPolicy, heartbeatIntervalMs: paceTarget });
    log.info({ to: paceTarget, expected: expectedAtStart }, "heartbeat interval set for the fleet expected back");
  }
  const byWorker = new Map<string, WorkerSession>();
  const all = new Set<WorkerSession>();
  const context = {
    registry,
    log,
    // New sessions start at the pace the fleet is moving to.
    heartbeatIntervalMs: () => paceTarget,
    limits,
    throttle,
    onAccepted: (s: WorkerSession) => {
      const previous = byWorker.get(s.workerId);
      byWorker.set(s.workerId, s);
      previous?.close(CloseCode.REPLACED, `new session from ${s.address ?? "unknown address"}`);
    },
    onEnded: (s: WorkerSession) => {
      all.delete(s);
      if (byWorker.get(s.workerId) === s) byWorker.delete(s.workerId);
    },
  };

  const ticketFile = options.stateFile ? ticketKeyPath(options.stateFile) : null;
  const ticketKeys = ticketFile ? loadTicketKeys(ticketFile, log) : newTicketKeys(null, log);
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
  // Handshakes look serials up in this list as they end (gateUnauthorized), resumed ones too, so a new list needs
  // neither a new TLS context nor new ticket keys: only the live sessions it revokes are closed.
  const revocations = options.tls.crl
    ? new Revocations(options.tls.crl, material.ca, log, ({ revoked }) => {
        registry.revokeMatching((serial) => revoked.has(serial));
        for (const s of all) {
          if (revoked.has(s.serialNumber)) s.close(CloseCode.REVOKED, `serial ${s.serialNumber}`);
        }
      })
    : null;
  if (revocations) {
    try {
      await revocations.load();
    } catch (err) {
      throw new FleetError("E_CERT", `cannot use the CRL (--crl) ${options.tls.crl}: ${errorMessage(err)}`);
    }
    // Workers restored from the state file whose certificate was revoked while the manager was away.
    registry.revokeMatching((serial) => revocations.isRevoked(serial));
  }
  const server: Server = createServer({
    ...managerServerOptions(material),
    handshakeTimeout: limits.handshakeTimeoutMs,
    ticketKeys,
    sessionTimeout: TICKET_LIFETIME_MS / 1000,
    // A client that starts a request and never finishes it is dropped like one that never says hello.
    headersTimeout: limits.helloTimeoutMs,
    requestTimeout: limits.helloTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.helloTimeoutMs),
    // Connections wait unread until the gate lets their handshake start.
    pauseOnConnect: true,
  });
  const gate = admitThroughGate(server, limits);
  // Node's HTTP timeouts do not cover a connection that never sends a byte of its request: past TLS, a client
  // has until the hello timeout to upgrade. ws clears the socket's timeout when it takes the socket over.
  function dropNoUpgrade(this: TLSSocket) {
    throttle.warn("no-upgrade", { address: this.remoteAddress }, "dropped: no upgrade request in time");
    this.destroy();
  }
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.destroyed) return;
    socket.setTimeout(limits.helloTimeoutMs);
    socket.on("timeout", dropNoUpgrade);
  });

  gateUnauthorized(
    server,
    ({ address, reason, subject, resumed }) =>
      throttle.warn("tls-refused", { address, reason, subject, resumed }, "TLS client refused: certificate not accepted"),
    (serial) => revocations?.isRevoked(serial) ?? false,
  );
  server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
    throttle.warn("tls-failed", { address: socket.remoteAddress, code: err.code, err: err.message.trim() }, "TLS handshake failed");
  });
  server.on("request", (_req, res) => {
    res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    res.end(`mcp-fleet manager: workers connect with a WebSocket upgrade at ${WORKER_PATH}\n`);
  });
  server.on("upgrade", (req, rawSocket, head) => {
    const socket = rawSocket as TLSSocket;
    socket.removeListener("timeout", dropNoUpgrade);
    const path = new URL(req.url ?? "/", "https://manager").pathname;
    if (path !== WORKER_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
      return;
    }
    const cert = peerCertificate(socket);
    if (!cert) {
      // gateUnauthorized destroyed such sockets already; checked again so no refactoring can open the door.
      log.warn({ address: socket.remoteAddress }, "upgrade without an authorized client certificate");
      socket.destroy();
      return;
    }
    // A resumed session carries the verdict of its first handshake, which may predate the certificate's expiry.
    const now = Date.now();
    if (now > cert.notAfter.getTime() || now < cert.notBefore.getTime()) {
      throttle.warn("tls-refused", { address: socket.remoteAddress, reason: "CERT_HAS_EXPIRED", resumed: socket.isSessionReused() }, "TLS client refused: certificate not accepted");
      socket.destroy();
      return;
    }
    // Listening dual-stack, IPv4 peers arrive as ::ffff:a.b.c.d; people and tools expect a.b.c.d.
    const address = socket.remoteAddress?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "") ?? null;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const id = cert.identity;
      // Checked at the handshake's end too; again here for a CRL that was reloaded in between.
      if (revocations?.isRevoked(cert.serialNumber)) {
        log.warn({ address, serial: cert.serialNumber, worker: id?.id }, "refused: certificate revoked");
        refuse(ws, CloseCode.REVOKED, `serial ${cert.serialNumber}`);
        return;
      }
      if (!id || id.role !== "worker" || id.fleet !== material.self.identity.fleet) {
        const what = id ? `${id.role} "${id.id}" of fleet "${id.fleet}"` : "no mcp-fleet identity";
        log.warn({ address, certificate: what, serial: cert.serialNumber }, "refused: certificate is not a worker of this fleet");
        refuse(ws, CloseCode.WRONG_ROLE, what);
        return;
      }
      if (all.size >= limits.maxSessions) {
        log.warn({ address, worker: id.id, sessions: all.size }, "refused: too many sessions");
        refuse(ws, CloseCode.TOO_MANY_SESSIONS, `limit ${limits.maxSessions}`);
        return;
      }
      all.add(new WorkerSession(ws, id, cert, address, socket.isSessionReused(), context));
    });
  });

  // The pace follows the fleet's size. Lengthening applies to the health bound at once and then reaches the workers;
  // shortening reaches the workers first and tightens the bound only after two old intervals, so nobody is judged
  // by a pace they have not heard of yet.
  let lastPaced = 0;
  let chores = 0;
  let tighten: NodeJS.Timeout | null = null;
  const repace = () => {
    // Compared with what the workers were told, not with the health bound: while a shortening is pending the
    // bound is still the older, longer interval.
    const current = paceTarget;
    const expected = registry.expectedSessions();
    const desired = paceFor(expected);
    if (!shouldRepace(current, desired)) return;
    if (tighten) clearTimeout(tighten);
    log.info({ from: current, to: desired, connected: byWorker.size, expected }, "heartbeat interval changed");
    if (desired > current) registry.setPolicy({ ...registry.healthPolicy, heartbeatIntervalMs: desired });
    else tighten = setTimeout(() => registry.setPolicy({ ...registry.healthPolicy, heartbeatIntervalMs: desired }), 2 * current);
    for (const s of all) s.pace(desired);
    paceTarget = desired;
  };

  let lastTickAt = performance.now();
  const tick = setInterval(() => {
    const tickAt = performance.now();
    gate.observeLag(tickAt - lastTickAt - TICK_MS);
    lastTickAt = tickAt;
    registry.tick();
    gate.pump();
    const shed = gate.takeShed();
    if (shed > 0) {
      throttle.warn("shed", { shed, waiting: gate.queued, maxWaitMs: limits.handshakeQueueMs }, "connections dropped: they waited too long for a TLS handshake");
    }
    // Slow chores, once a second: with 10,000 workers each is a walk over all of them.
    if (tickAt - lastPaced < 1000) return;
    lastPaced = tickAt;
    if (options.heartbeatBudget) repace();
    // A socket silent for ten times the unhealthy bound is half-open or wedged: free it. Looked for every tenth
    // second: ten seconds late for such a socket matters less than a walk over the whole fleet every second.
    if (++chores % 10 !== 0) return;
    for (const { id, sessionId } of registry.silentSessions(10 * missedBoundMs(registry.healthPolicy))) {
      const session = byWorker.get(id);
      if (session?.sessionId === sessionId) session.close(CloseCode.HEARTBEAT_TIMEOUT);
    }
  }, TICK_MS);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // Node's default backlog of 511 overflows when thousands of workers reconnect at once: dropped SYNs are
    // retried only after 1 s, 3 s, 7 s. The kernel caps this at net.core.somaxconn (4096 on current Linux).
    server.listen(options.port, options.host, LISTEN_BACKLOG, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  revocations?.watch();
  const fleetId = fleetIdFromCa(material.ca);
  const publisher = options.mdns
    ? new Publisher({
        name: `mcp-fleet manager on ${hostname().split(".")[0]}`,
        port,
        announcement: { role: "manager", fleet: fleetId, protocol: PROTOCOL_VERSION },
        log,
      })
    : null;
  const browser = options.mdns ? new FleetBrowser({ log }) : null;
  void publisher?.start();
  browser?.start();
  log.info(
    {
      port,
      host: options.host ?? "*",
      fleet: material.self.identity.fleet,
      fleetId,
      mdns: Boolean(options.mdns),
      heartbeatIntervalMs: policy.heartbeatIntervalMs,
      missedHeartbeats: policy.missedHeartbeats,
    },
    "manager listening",
  );

  let closing: Promise<void> | null = null;
  return {
    registry,
    port,
    fleet: material.self.identity.fleet,
    fleetId,
    workerAnnouncements() {
      return browser?.list((p) => p.announcement.role === "worker") ?? [];
    },
    reloadCrl(reason) {
      return revocations ? revocations.reload(reason) : Promise.resolve();
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async request(workerId, method, params, callOptions) {
      const session = byWorker.get(workerId);
      if (!session?.isOpen) throw new FleetError("E_NOT_CONNECTED", `worker ${workerId} is not connected`);
      const answer = METHODS[method].result.safeParse(await session.request(method, params, callOptions));
      if (!answer.success) {
        throw new FleetError("E_BAD_RESPONSE", `worker ${workerId} answered ${method} with data that does not match the protocol`);
      }
      return answer.data as MethodResult<typeof method>;
    },
    close() {
      closing ??= (async () => {
        clearInterval(tick);
        if (tighten) clearTimeout(tighten);
        // Stop accepting first: a worker told to go away reconnects at once, and a connection accepted by a
        // manager on its way out is reset when it exits, which costs the worker a longer backoff.
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        gate.close();
        revocations?.stop();
        browser?.stop();
        const goodbye = publisher?.stop();
        // Workers get a 1001 so they know this was a clean stop; waiting for every close handshake is not
        // worth more than half a second when an MCP client is waiting for us to exit.
        log.info({ sessions: all.size }, "closing worker sessions: manager shutting down");
        for (const s of all) s.close(1001, "manager shutting down");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            for (const s of all) s.terminate();
            resolve();
          }, 500);
          const check = setInterval(() => {
            if (all.size === 0) {
              clearTimeout(timer);
              clearInterval(check);
              resolve();
            }
          }, 20);
        });
        wss.close();
        server.closeAllConnections();
        await stopped;
        keeper?.stop();
        throttle.stop();
        await goodbye;
        log.info("manager stopped");
      })();
      return closing;
    },
  };
}
