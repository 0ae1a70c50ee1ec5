import { createServer, type Server } from "node:https";
import { createPublicKey } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { WebSocketServer } from "ws";
import { systemClock, type Clock } from "../core/clock.js";
import { DEFAULT_POLICY, type HealthPolicy } from "../core/health.js";
import { Registry, type HealthEvent } from "../core/registry.js";
import { fleetIdFromCa } from "../discovery/txt.js";
import type { Peer } from "../discovery/browser.js";
import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import { LogThrottle } from "../log-throttle.js";
import { CloseCode } from "../protocol/close-codes.js";
import type { CallOptions } from "../protocol/correlator.js";
import { MAX_FRAME_BYTES } from "../protocol/messages.js";
import { METHODS, type MethodName, type MethodParams, type MethodResult } from "../protocol/methods.js";
import { gateUnauthorized, isJoinSocket, managerServerOptions, type TlsPaths } from "../tls/contexts.js";
import { MAX_RATE_IDS, SessionAdmission } from "./admission.js";
import { startAnnouncing } from "./announce.js";
import { Chores } from "./chores.js";
import { joinRequestHandler } from "./join-endpoint.js";
import { loadCredentials } from "./credentials.js";
import { MCP_PATH, McpHttpEndpoint, type McpHttpOptions } from "./mcp-http.js";
import type { FleetMcp } from "../mcp/server.js";
import type { Principal } from "../mcp/principal.js";
import { FrontDoor } from "./front-door.js";
import { DEFAULT_LIMITS, type SessionLimits } from "./limits.js";
import { PaceController } from "./pace-controller.js";
import { StateKeeper } from "./persistence.js";
import type { CrlUpdate } from "./revocation.js";
import { SessionRate } from "./session-rate.js";
import { SessionTable } from "./session-table.js";
import { shutDown } from "./shutdown.js";
import { TICKET_LIFETIME_MS } from "./ticket-keys.js";
import { upgradeHandler, WORKER_PATH } from "./upgrade.js";
import type { JobService } from "../jobs/api.js";
import { createJobService } from "../jobs/service.js";
import type { JoinService } from "../enroll/api.js";
import { NO_ENROLLMENT } from "../enroll/disabled.js";
import type { Issuer } from "../enroll/issuer.js";
import { RenewalScheduler } from "../enroll/renewal.js";
import { createEnrollmentService } from "../enroll/service.js";
import { caPin, pinPrefix } from "../pki/pin.js";
import { tlsCause } from "../metrics/causes.js";
import { NO_METRICS, type ManagerMetrics } from "../metrics/sink.js";

export { WORKER_PATH } from "./upgrade.js";

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
  /** Invocations in flight over the fleet at once (default 1,000). */
  maxInvocations?: number;
  /** Invocations in flight on one worker at once, over all jobs (default 4). */
  maxWorkerInvocations?: number;
  /** Finished jobs kept, and saved in the state file (default 500; and at most 7 days). */
  jobHistory?: number;
  /** Output kept of all invocations at once (default 256 MiB); past it the oldest finished jobs' goes first. */
  outputBudgetBytes?: number;
  /**
   * Hosts joining by themselves (src/enroll/): the CA's issuer (null: no CA key, joins are refused), the lifetime
   * of the certificates it issues (joins and renewals), the join file, the cap on requests waiting for approval,
   * and join requests a minute per source address (a burst of twice that; 0: no limit). None: joins are refused.
   */
  enrollment?: { issuer: Issuer | null; lifetimeMs: number; tokensPath: string; maxPending?: number; joinRate?: number };
  /**
   * MCP over Streamable HTTP at /mcp on the same port, for operators' and viewers' certificates (`manager --daemon`);
   * `serve` builds one session's MCP server. None: /mcp is not served (the MCP server is on stdio).
   */
  mcpHttp?: Omit<McpHttpOptions, "serve"> & { serve: (principal: Principal, manager: Manager) => FleetMcp };
  /** Announce on mDNS and watch worker announcements (off unless asked for: tests and embedders opt in). */
  mdns?: boolean;
  /** Where the manager's parts count what they see (src/metrics/); the registry is read from it at scrape time. */
  metrics?: ManagerMetrics;
  clock?: Clock;
  log: Logger;
}

export const DEFAULT_RESTART_GRACE_MS = 30_000;
export const DEFAULT_CERT_LIFETIME_MS = 7 * 86_400_000;
export const DEFAULT_JOIN_RATE = 10;

export interface Manager {
  readonly registry: Registry;
  /** Actions the fleet offers, and jobs that run them (src/jobs/api.ts). */
  readonly jobs: JobService;
  /** Hosts asking to join, and the operator's decisions (src/enroll/api.ts). */
  readonly joins: JoinService;
  /** Where the MCP server counts its tool calls and notifications; none: nothing is counted. */
  readonly metrics?: ManagerMetrics;
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
  request<M extends MethodName>(workerId: string, method: M, params: MethodParams<M> | Record<string, never> | undefined, options: CallOptions): Promise<MethodResult<M>>;
  /** Whether the worker has an open session now. */
  connected(workerId: string): boolean;
  /** Calls `listener` each time a worker names a catalogue hash (hello, and every heartbeat carrying one: cheap to repeat). */
  onCatalog(listener: (workerId: string, hash: string) => void): () => void;
  close(): Promise<void>;
}

/** The registry, with every transition logged, saved and passed to the listeners. */
function createRegistry(options: ManagerOptions, listeners: Set<(event: HealthEvent) => void>, changed: () => void): Registry {
  const log = options.log;
  const policy: HealthPolicy = {
    ...DEFAULT_POLICY,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    missedHeartbeats: options.missedHeartbeats,
    pressurePercent: options.pressurePercent ?? DEFAULT_POLICY.pressurePercent,
    certWarnMs: options.certWarnMs ?? DEFAULT_POLICY.certWarnMs,
  };
  return new Registry({
    clock: options.clock ?? systemClock,
    policy,
    historyLimit: options.historyLimit,
    forgetOfflineAfterMs: options.forgetOfflineAfterMs,
    onEvent: (e: HealthEvent) => {
      const level = e.to === "unhealthy" ? "warn" : "info";
      log[level]({ event: "transition", worker: e.worker, from: e.from, to: e.to, reasons: e.reasons }, "worker state changed");
      changed();
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
}

/**
 * The manager's worker side, put together from its parts (docs/architecture.md, "The manager's parts"): the
 * credentials, the registry and its state file, the front door with the handshake gate, the TLS and HTTP server
 * behind it, the upgrade into sessions through the admission, the pace, the chores on the tick, mDNS and shutdown.
 */
export async function startManager(options: ManagerOptions): Promise<Manager> {
  const log = options.log;
  const metrics = options.metrics ?? NO_METRICS;
  const listeners = new Set<(event: HealthEvent) => void>();
  const catalogListeners = new Set<(workerId: string, hash: string) => void>();
  let keeper: StateKeeper | null = null;
  const registry = createRegistry(options, listeners, () => keeper?.changed());
  if (options.stateFile) {
    keeper = new StateKeeper(options.stateFile, registry, log);
    keeper.load(options.restartGraceMs ?? DEFAULT_RESTART_GRACE_MS);
  }
  const limits: SessionLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const throttle = new LogThrottle(log);
  const pace = new PaceController(registry, options.heartbeatIntervalMs, options.heartbeatBudget ?? 0, log);
  const sessions = new SessionTable();
  let mcpHttp: McpHttpEndpoint | null = null;
  // What a reloaded CRL changes in a running manager: the workers it revokes leave the live set, and their live
  // sessions are closed with 4004; so do the MCP sessions of revoked operators and viewers.
  const onCrlReloaded = ({ revoked }: CrlUpdate) => {
    registry.revokeMatching((serial) => revoked.has(serial));
    for (const s of sessions) if (revoked.has(s.serialNumber)) s.close(CloseCode.REVOKED, `serial ${s.serialNumber}`);
    mcpHttp?.revoked((serial) => revoked.has(serial));
  };
  const { material, ticketKeys, revocations } = await loadCredentials(options.tls, options.stateFile, log, onCrlReloaded);
  // Workers restored from the state file whose certificate was revoked while the manager was away.
  if (revocations) registry.revokeMatching((serial) => revocations.isRevoked(serial));

  const server: Server = createServer({
    ...managerServerOptions(material),
    handshakeTimeout: limits.handshakeTimeoutMs,
    ticketKeys,
    sessionTimeout: TICKET_LIFETIME_MS / 1000,
  });
  const door = new FrontDoor(server, limits, throttle, metrics);
  gateUnauthorized(
    server,
    ({ address, reason, subject, resumed }) => {
      metrics.refused(tlsCause(reason));
      throttle.warn("tls-refused", { address, reason, subject, resumed }, "TLS client refused: certificate not accepted");
    },
    (serial) => revocations?.isRevoked(serial) ?? false,
    createPublicKey(material.ca),
  );
  server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
    metrics.refused("tls_failed");
    throttle.warn("tls-failed", { address: socket.remoteAddress, code: err.code, err: err.message.trim() }, "TLS handshake failed");
  });
  const enrollment = createEnrollmentService({
    tokensPath: options.enrollment?.tokensPath ?? "",
    issuer: options.enrollment?.issuer ?? null,
    lifetimeMs: options.enrollment?.lifetimeMs ?? DEFAULT_CERT_LIFETIME_MS,
    maxPending: options.enrollment?.maxPending,
    clock: options.clock,
    log,
    // A replace token took an id: the CRL on disk lists the old certificates now; their sessions end at once.
    onRevoked: () => void revocations?.reload("certificates replaced by a join"),
  });
  await enrollment.start();
  const joinRate = options.enrollment?.joinRate ?? DEFAULT_JOIN_RATE;
  const joinRates = new SessionRate(joinRate, 2 * joinRate, MAX_RATE_IDS);
  const onJoin = joinRequestHandler({ service: enrollment, rate: joinRates, door, throttle, log, bodyTimeoutMs: limits.helloTimeoutMs });
  let self: Manager | null = null;
  if (options.mcpHttp) {
    const { serve, ...rest } = options.mcpHttp;
    mcpHttp = new McpHttpEndpoint({
      ...rest,
      // Sessions start only once the port listens, and by then the manager is whole.
      serve: (principal) => serve(principal, self!),
      fleet: material.self.identity.fleet,
      door,
      isRevoked: (serial) => revocations?.isRevoked(serial) ?? false,
      throttle,
      log,
    });
  }
  server.on("request", (req, res) => {
    if (URL.parse(req.url ?? "/", "https://manager")?.pathname === MCP_PATH) {
      if (mcpHttp) return mcpHttp.handle(req, res);
      res.writeHead(404, { "content-type": "text/plain" });
      return void res.end(`mcp-fleet manager: this manager serves MCP on its stdio; \`mcp-fleet manager --daemon\` serves ${MCP_PATH}\n`);
    }
    if (isJoinSocket(req.socket as TLSSocket)) return onJoin(req, res);
    res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" });
    res.end(`mcp-fleet manager: workers connect with a WebSocket upgrade at ${WORKER_PATH}\n`);
  });
  const admission = new SessionAdmission(limits, material.self.identity.fleet, (serial) => revocations?.isRevoked(serial) ?? false);
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
  const context = {
    registry,
    log,
    // New sessions start at the pace the fleet is moving to.
    heartbeatIntervalMs: () => pace.interval,
    limits,
    throttle,
    onAccepted: (s: Parameters<SessionTable["accepted"]>[0]) => sessions.accepted(s),
    onEnded: (s: Parameters<SessionTable["ended"]>[0]) => sessions.ended(s),
    onCatalog: (workerId: string, hash: string) => {
      for (const listener of catalogListeners) listener(workerId, hash);
    },
    metrics,
  };
  server.on("upgrade", upgradeHandler({ wss, door, admission, sessions, context, log, throttle, metrics }));

  const rate = {
    expire: () => {
      admission.rate.expire();
      joinRates.expire();
    },
  };
  const issuer = options.enrollment?.issuer ?? null;
  const renewals = issuer
    ? new RenewalScheduler({
        sessions,
        registry,
        issuer,
        lifetimeMs: options.enrollment?.lifetimeMs ?? DEFAULT_CERT_LIFETIME_MS,
        clock: options.clock ?? systemClock,
        log,
      })
    : null;
  const chores = new Chores({ registry, door, pace, sessions, rate, renewals });
  chores.start();
  const port = await door.listen(options.port, options.host);
  revocations?.watch();
  const fleetId = fleetIdFromCa(material.ca);
  const announcer = startAnnouncing({ enabled: Boolean(options.mdns), port, fleetId, pin: pinPrefix(caPin(material.ca)), log });
  log.info(
    {
      port,
      host: options.host ?? "*",
      fleet: material.self.identity.fleet,
      fleetId,
      mdns: Boolean(options.mdns),
      enrollment: enrollment.enabled,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      missedHeartbeats: options.missedHeartbeats,
    },
    "manager listening",
  );

  const link = {
    connected: (workerId: string) => sessions.current(workerId)?.isOpen ?? false,
    // Not an async function: a fan-out has a thousand of these waiting at once, and each would hold its frame.
    request<M extends MethodName>(workerId: string, method: M, params: MethodParams<M> | Record<string, never> | undefined, callOptions: CallOptions): Promise<MethodResult<M>> {
      const session = sessions.current(workerId);
      if (!session?.isOpen) return Promise.reject(new FleetError("E_NOT_CONNECTED", `worker ${workerId} is not connected`));
      return session.request(method, params, callOptions).then((value) => {
        const answer = METHODS[method].result.safeParse(value);
        if (!answer.success) {
          throw new FleetError("E_BAD_RESPONSE", `worker ${workerId} answered ${method} with data that does not match the protocol`);
        }
        return answer.data as MethodResult<M>;
      });
    },
  };
  const jobs = createJobService({
    registry,
    link,
    onCatalog: (listener) => {
      catalogListeners.add(listener);
      return () => catalogListeners.delete(listener);
    },
    onEvent: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clock: options.clock ?? systemClock,
    log,
    limits: { maxInFlight: options.maxInvocations, maxPerWorker: options.maxWorkerInvocations },
    jobHistory: options.jobHistory,
    outputBudgetBytes: options.outputBudgetBytes,
    changed: () => keeper?.changed(),
    restored: keeper?.loadedJobs,
    metrics,
  });
  if (keeper) keeper.jobs = jobs;
  metrics.attach({ registry, sessionsOpen: () => sessions.size });

  let closing: Promise<void> | null = null;
  self = {
    registry,
    jobs,
    joins: enrollment.enabled ? enrollment : NO_ENROLLMENT,
    metrics,
    port,
    fleet: material.self.identity.fleet,
    fleetId,
    workerAnnouncements: () => announcer.workers(),
    reloadCrl: (reason) => (revocations ? revocations.reload(reason) : Promise.resolve()),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    connected: link.connected,
    onCatalog(listener) {
      catalogListeners.add(listener);
      return () => catalogListeners.delete(listener);
    },
    request: link.request,
    close() {
      const parts = { jobs, enrollment, chores, pace, door, sessions, wss, revocations, announcer, keeper, throttle, log };
      closing ??= (mcpHttp?.close() ?? Promise.resolve()).then(() => shutDown(parts));
      return closing;
    },
  };
  return self;
}
