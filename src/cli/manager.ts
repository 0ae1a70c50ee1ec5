import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { fields, flag, loadConfig } from "../config/load.js";
import { createLogger, type Logger } from "../log.js";
import { loadIssuer, type Issuer } from "../enroll/issuer.js";
import { tokensPathBesideCa } from "../enroll/token-file.js";
import { readCertificate } from "../pki/identity.js";
import { startManager, type Manager } from "../manager/manager.js";
import { MCP_PATH } from "../manager/mcp-http.js";
import type { Principal } from "../mcp/principal.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { DEFAULT_STATE_HINT, defaultStateFile } from "../config/paths.js";
import { createMcpServer } from "../mcp/server.js";
import { DEFAULT_METRICS_LISTEN, MetricsListen } from "../metrics/listen-address.js";
import { duration, logLevelField, logLevelFlag, shutdownOn, tlsFields } from "./common.js";
import { startManagerMetrics, type ManagerMetricsEndpoint } from "./manager-metrics.js";

/** `https://a.example,https://b.example` → the origins a browser page may call /mcp from; "" → none. */
const originsField = z
  .string()
  .default("")
  .transform((text) => text.split(",").map((o) => o.trim()).filter(Boolean))
  .pipe(z.array(z.url({ protocol: /^https?$/, error: "each origin must be an http(s) URL such as https://console.example" })));

const schema = z.object({
  ...tlsFields,
  crl: fields.optionalPath,
  host: z.string().min(1).optional(),
  port: fields.port,
  heartbeatInterval: duration({ min: 100, max: 3_600_000 }),
  missedHeartbeats: fields.positiveInt(100),
  heartbeatBudget: z.coerce.number().int().min(0).max(10_000_000),
  pressurePercent: z.coerce.number().min(0).max(100),
  state: fields.optionalPath,
  restartGrace: duration({ min: 0, max: 86_400_000 }),
  forgetOfflineAfter: duration({ min: 0, max: 3650 * 86_400_000 }),
  requestTimeout: duration({ min: 100, max: 600_000 }),
  mdns: z.boolean(),
  handshakeTimeout: duration({ min: 100, max: 120_000 }),
  helloTimeout: duration({ min: 100, max: 120_000 }),
  maxMessageRate: fields.positiveInt(100_000),
  maxSessions: fields.positiveInt(1_000_000),
  maxSessionRate: z.coerce.number().int().min(0).max(1_000_000),
  certWarn: duration({ min: 0, max: 3650 * 86_400_000 }),
  maxInvocations: fields.positiveInt(1_000_000),
  maxWorkerInvocations: fields.positiveInt(64),
  jobHistory: fields.positiveInt(100_000),
  caKey: fields.optionalPath,
  tokens: fields.optionalPath,
  certLifetime: duration({ min: 60_000, max: 365 * 86_400_000 }),
  maxJoinRequests: fields.positiveInt(100_000),
  joinRate: z.coerce.number().int().min(0).max(1_000_000),
  metricsListen: MetricsListen,
  metricsHosts: z.boolean().default(false),
  logLevel: logLevelField,
  daemon: z.boolean().optional(),
  allowedOrigins: originsField,
  mcpIdleTimeout: duration({ min: 1000, max: 7 * 86_400_000 }),
  maxMcpSessions: fields.positiveInt(10_000),
});

export function managerCommand(): Command {
  return new Command("manager")
    .description("run the manager: accept workers over mutual TLS, track their health, serve MCP on stdio (or, with --daemon, at /mcp)")
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "manager certificate", "certs/manager.pem"))
    .addOption(flag("--key <file>", "manager private key", "certs/manager-key.pem"))
    .addOption(flag("--crl <file>", "certificate revocation list, watched for changes (default: crl.pem beside --ca, if there is one)"))
    .addOption(flag("--host <address>", "address to listen on (default: all)"))
    .addOption(flag("--port <port>", "port to listen on (0 picks a free one)", "7443"))
    .addOption(flag("--heartbeat-interval <duration>", "heartbeat interval workers are told to keep", "1s"))
    .addOption(flag("--missed-heartbeats <n>", "a connected worker is unhealthy after this many missed intervals", "3"))
    .addOption(flag("--heartbeat-budget <n>", "heartbeats per second for the whole fleet; the interval lengthens beyond it (0: no limit)", "2000"))
    .addOption(flag("--pressure-percent <n>", "memory or disk use above this percent is a warning; 0 turns it off", "95"))
    .addOption(flag("--state <file>", `where known workers and their history are kept (default: ${DEFAULT_STATE_HINT})`))
    .addOption(flag("--restart-grace <duration>", "after a restart, how long known workers have to reconnect (stretched, up to 4 times, while they still are)", "30s"))
    .addOption(flag("--forget-offline-after <duration>", "forget a worker offline (goodbye or revoked certificate) for longer than this; 0s: never", "7d"))
    .addOption(flag("--request-timeout <duration>", "how long a worker has to answer a status request", "5s"))
    .addOption(flag("--no-mdns", "do not announce this manager, nor watch for worker announcements, on mDNS"))
    .addOption(flag("--handshake-timeout <duration>", "time a client has to complete the TLS handshake", "5s"))
    .addOption(flag("--hello-timeout <duration>", "time a client has from TLS to its hello", "5s"))
    .addOption(flag("--max-message-rate <n>", "messages per second a session may send (bursts of 4x allowed)", "50"))
    .addOption(flag("--max-sessions <n>", "sessions open at once", "20000"))
    .addOption(flag("--max-session-rate <n>", "new sessions a minute one worker id may open, after a burst of 2x (0: no limit)", "10"))
    .addOption(flag("--cert-warn <duration>", "a worker whose certificate expires within this is degraded", "14d"))
    .addOption(flag("--max-invocations <n>", "action invocations in flight over the whole fleet at once", "1000"))
    .addOption(flag("--max-worker-invocations <n>", "action invocations in flight on one worker at once, over all jobs", "4"))
    .addOption(flag("--job-history <n>", "finished jobs kept, and saved in the state file (and at most 7 days)", "500"))
    .addOption(flag("--ca-key <file>", "fleet CA private key, to enroll joining hosts and renew certificates (default: ca-key.pem beside --ca; unreadable: no enrollment)"))
    .addOption(flag("--tokens <file>", "join tokens and join requests (default: tokens.json beside --ca)"))
    .addOption(flag("--cert-lifetime <duration>", "lifetime of the certificates this manager issues to joining and renewing hosts", "7d"))
    .addOption(flag("--max-join-requests <n>", "join requests waiting for approval at once", "100"))
    .addOption(flag("--join-rate <n>", "join requests a minute from one address, after a burst of 2x (0: no limit)", "10"))
    .addOption(flag("--daemon", "serve MCP over HTTPS at /mcp on --port, to operator and viewer certificates, instead of on stdio"))
    .addOption(flag("--allowed-origins <origins>", "with --daemon: comma-separated browser origins allowed to call /mcp (default: none; requests without Origin pass)"))
    .addOption(flag("--mcp-idle-timeout <duration>", "with --daemon: close an MCP session with no request or stream open for this long", "30m"))
    .addOption(flag("--max-mcp-sessions <n>", "with --daemon: MCP sessions open at once", "64"))
    .addOption(flag("--metrics-listen <host:port>", "Prometheus metrics, /healthz and /readyz over plain HTTP here; off: none (see README, Metrics)", DEFAULT_METRICS_LISTEN))
    .addOption(flag("--metrics-hosts", "also export each connected worker's latest CPU, memory, disk, load and network figures"))
    .addOption(logLevelFlag())
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(schema, cmd);
      const log = createLogger({ name: "manager", level: o.logLevel });
      // `certs init` writes crl.pem beside ca.pem; revocation should work without anyone remembering a flag.
      const besideCa = join(dirname(o.ca), "crl.pem");
      const crl = o.crl ?? (existsSync(besideCa) ? besideCa : undefined);
      const issuer = await managerIssuer(o.ca, o.caKey ?? join(dirname(o.ca), "ca-key.pem"), o.cert, log);
      const metrics = await startManagerMetrics(o.metricsListen, o.metricsHosts, log);
      const manager = await startManager({
        metrics: metrics.sink,
        tls: { ca: o.ca, cert: o.cert, key: o.key, crl },
        host: o.host,
        port: o.port,
        heartbeatIntervalMs: o.heartbeatInterval,
        missedHeartbeats: o.missedHeartbeats,
        heartbeatBudget: o.heartbeatBudget,
        pressurePercent: o.pressurePercent,
        certWarnMs: o.certWarn,
        // Only here, when a manager really starts: no other command needs a home directory.
        stateFile: o.state ?? defaultStateFile(),
        restartGraceMs: o.restartGrace,
        forgetOfflineAfterMs: o.forgetOfflineAfter,
        mdns: o.mdns,
        maxInvocations: o.maxInvocations,
        maxWorkerInvocations: o.maxWorkerInvocations,
        jobHistory: o.jobHistory,
        enrollment: {
          issuer,
          lifetimeMs: o.certLifetime,
          tokensPath: o.tokens ?? tokensPathBesideCa(o.ca),
          maxPending: o.maxJoinRequests,
          joinRate: o.joinRate,
        },
        limits: {
          handshakeTimeoutMs: o.handshakeTimeout,
          helloTimeoutMs: o.helloTimeout,
          messagesPerSecond: o.maxMessageRate,
          messageBurst: 4 * o.maxMessageRate,
          maxSessions: o.maxSessions,
          sessionsPerMinute: o.maxSessionRate,
          sessionBurst: 2 * o.maxSessionRate,
        },
        ...(o.daemon
          ? {
              mcpHttp: {
                allowedOrigins: o.allowedOrigins,
                idleTimeoutMs: o.mcpIdleTimeout,
                maxSessions: o.maxMcpSessions,
                serve: (principal: Principal, m: Manager) => createMcpServer(m, { requestTimeoutMs: o.requestTimeout, log, principal }),
              },
            }
          : {}),
        log,
      }).catch(async (err: unknown) => {
        await metrics.close();
        throw err;
      });
      metrics.setReady(true);
      if (o.daemon) return serveDaemon(manager, metrics, o.host, log);
      // stdout belongs to MCP from here on: Claude Desktop (or any MCP client) talks to us over stdio.
      const mcp = createMcpServer(manager, { requestTimeoutMs: o.requestTimeout, log });
      const stop = shutdownOn(async (why) => {
        log.info({ why }, "manager stopping");
        metrics.setReady(false);
        await mcp.close();
        await manager.close();
        await metrics.close();
      });
      process.on("SIGHUP", () => void manager.reloadCrl("SIGHUP"));
      // The client closing our stdin is how it says goodbye (and how Claude Desktop quits us).
      process.stdin.once("end", () => stop("stdin closed"));
      await mcp.server.connect(new StdioServerTransport());
    });
}

/** The manager as a service: MCP is at /mcp (see src/manager/mcp-http.ts), stdin is not ours, signals stop it. */
function serveDaemon(manager: Manager, metrics: ManagerMetricsEndpoint, host: string | undefined, log: Logger): void {
  const shown = !host ? "localhost" : host.includes(":") ? `[${host}]` : host;
  log.info({ url: `https://${shown}:${manager.port}${MCP_PATH}` }, "serving MCP over HTTPS to operator and viewer certificates");
  shutdownOn(async (why) => {
    log.info({ why }, "manager stopping");
    metrics.setReady(false);
    await manager.close();
    await metrics.close();
  });
  process.on("SIGHUP", () => void manager.reloadCrl("SIGHUP"));
}

/**
 * The CA's issuer for this manager's fleet, or null (logged by loadIssuer) without a usable CA key. A manager
 * certificate that cannot be read is left for startManager to report.
 */
async function managerIssuer(caPath: string, caKeyPath: string, certPath: string, log: Logger): Promise<Issuer | null> {
  let fleet: string | undefined;
  try {
    fleet = readCertificate(readFileSync(certPath)).identity?.fleet;
  } catch {
    return null;
  }
  return fleet ? loadIssuer({ caPath, caKeyPath, fleet, log }) : null;
}
