import { hostname, release } from "node:os";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { GoodbyeReason, Labels } from "../protocol/messages.js";
import { toHostname, toToken } from "../protocol/text.js";
import { isMethodName } from "../protocol/methods.js";
import { loadTlsMaterial, workerClientOptions, type TlsPaths } from "../tls/contexts.js";
import { VERSION } from "../version.js";
import { FleetBrowser } from "../discovery/browser.js";
import { Publisher } from "../discovery/publisher.js";
import { fleetIdFromCa } from "../discovery/txt.js";
import { PROTOCOL_VERSION } from "../protocol/messages.js";
import { McpHost } from "./actions/mcp-host.js";
import { ActionService, DEFAULT_MAX_ACTIONS } from "./actions/service.js";
import { Collector } from "./collector.js";
import { ManagerCandidates } from "./candidates.js";
import type { EnrolledPaths } from "./join/enrolled-identity.js";
import { CertificateRenewer } from "./join/renewal.js";
import { Link } from "./link.js";

/** Workers listen on no port; DNS-SD needs one in the SRV record, so it names 9 (discard). */
const WORKER_PLACEHOLDER_PORT = 9;

export interface WorkerOptions {
  tls: TlsPaths;
  /** A fixed manager; without it the worker finds managers of its fleet on mDNS. */
  manager?: string;
  /** Announce this worker, and (without `manager`) browse, on mDNS. */
  mdns: boolean;
  labels: Labels;
  collectIntervalMs: number;
  collectTimeoutMs: number;
  /** The dir of command action files (--actions-dir); undefined: no command actions. */
  actionsDir?: string;
  /** The host's MCP servers file (--mcp-servers); undefined: none. */
  mcpServers?: string;
  /** The built-in diagnostics (off with --no-diagnostics). */
  diagnostics?: boolean;
  /** Invocations running at once (--max-actions). */
  maxActions?: number;
  /**
   * Set when the identity is one this host was enrolled with (`tls` then names the state dir's files): the hello
   * says `renewable`, and the manager renews the certificate over the session.
   */
  enrolled?: EnrolledPaths;
  log: Logger;
}

export interface WorkerAgent {
  readonly id: string;
  /** `why` is for the log; `goodbye` is the code the manager is told. */
  stop(why: string, goodbye?: GoodbyeReason): Promise<void>;
  /** Reads the actions dir again (SIGHUP). */
  reloadActions(): Promise<void>;
}

/** The worker agent: its identity comes from its certificate, its pace from the manager. */
export function startWorker(options: WorkerOptions): WorkerAgent {
  let material = loadTlsMaterial(options.tls, "worker");
  const id = material.self.identity.id;
  const log = options.log.child({ worker: id });
  const collector = new Collector({ intervalMs: options.collectIntervalMs, timeoutMs: options.collectTimeoutMs, log });
  const fleet = fleetIdFromCa(material.ca);
  const browser = options.mdns && !options.manager ? new FleetBrowser({ log }) : null;
  const managers = new ManagerCandidates(fleet, browser);
  const actions: ActionService = new ActionService({
    actionsDir: options.actionsDir,
    diagnostics: options.diagnostics,
    maxActions: options.maxActions ?? DEFAULT_MAX_ACTIONS,
    mcp: options.mcpServers ? new McpHost({ file: options.mcpServers, log, onChange: () => actions.refresh() }) : undefined,
    log,
  });
  const renewer = options.enrolled
    ? new CertificateRenewer({
        paths: options.enrolled,
        current: () => material,
        installed: (fresh) => {
          material = fresh;
          link.setTls(workerClientOptions(material));
        },
        log,
      })
    : null;
  const renewal = (): CertificateRenewer => {
    if (renewer) return renewer;
    throw Object.assign(new Error("this worker's certificate was installed by hand; renew it the same way"), { code: "not_renewable" });
  };
  const link = new Link({
    nextTarget: options.manager ? () => options.manager! : () => managers.next(),
    onManagerRejected: options.manager ? undefined : (url) => managers.reject(url),
    holdOff: () => {
      // The files are read again each time, so a renewed certificate is picked up without a restart.
      try {
        const fresh = loadTlsMaterial(options.tls, "worker");
        if (fresh.self.serialNumber !== material.self.serialNumber) {
          material = fresh;
          link.setTls(workerClientOptions(material));
          log.info({ serial: material.self.serialNumber, notAfter: material.self.notAfter }, "using a renewed certificate");
        }
      } catch (err) {
        log.warn({ err: errorMessage(err) }, "certificate files unreadable; keeping the ones loaded at start");
      }
      const now = Date.now();
      const { notBefore, notAfter } = material.self;
      if (now > notAfter.getTime()) {
        const fix = options.enrolled
          ? `join again: mcp-fleet worker --join <join string> --state-dir ${options.enrolled.dir}`
          : `issue a new one (mcp-fleet certs issue ${id} --force) and install it`;
        return `this worker's certificate expired on ${notAfter.toISOString()}; ${fix}`;
      }
      if (now < notBefore.getTime()) {
        return `this worker's certificate is not valid until ${notBefore.toISOString()}; check this host's clock`;
      }
      return null;
    },
    tls: workerClientOptions(material),
    // What the hello claims is held to the protocol's classes here, so an odd host name or kernel release is
    // sent in a form the manager accepts (docs/protocol.md) instead of costing the worker its session.
    hello: {
      id,
      hostname: toHostname(hostname(), id),
      agentVersion: VERSION,
      labels: options.labels,
      platform: { os: process.platform, arch: process.arch, release: toToken(release(), 64) },
      ...(options.enrolled ? { renewable: true } : {}),
    },
    metrics: () => collector.summary(),
    catalog: () => actions.hash(),
    onRequest: async (method, params, context) => {
      if (!isMethodName(method)) throw Object.assign(new Error(`unknown method ${method}`), { code: "unknown_method" });
      switch (method) {
        case "status.snapshot":
          return collector.snapshot();
        case "actions.list":
        case "actions.run":
        case "actions.cancel":
          return actions.handle(method, params, context);
        case "certificate.renew":
          return renewal().renew(params);
        case "certificate.install":
          return renewal().install(params);
      }
    },
    log,
  });
  const days = (material.self.notAfter.getTime() - Date.now()) / 86_400_000;
  log.info(
    {
      fleet: material.self.identity.fleet,
      fleetId: fleet,
      manager: options.manager ?? (browser ? "mDNS" : "none"),
      certExpiresInDays: Math.floor(days),
      enrolled: options.enrolled !== undefined,
      version: VERSION,
    },
    "worker starting",
  );
  // Announced even when it cannot connect, so an operator can see a host whose certificate is refused.
  const publisher = options.mdns
    ? new Publisher({
        name: `mcp-fleet worker ${id}`,
        port: WORKER_PLACEHOLDER_PORT,
        announcement: { role: "worker", fleet, protocol: PROTOCOL_VERSION, id, version: VERSION },
        log,
      })
    : null;
  collector.start();
  browser?.on("change", () => link.poke());
  browser?.start();
  void publisher?.start();
  // The hello carries the catalogue's hash, so the link starts once the catalogue has been read.
  const ready = actions.start().then(
    () => link.start(),
    (err: unknown) => {
      log.error({ err: errorMessage(err) }, "actions could not be loaded; connecting without them");
      link.start();
    },
  );
  return {
    id,
    reloadActions: () => actions.reload(),
    async stop(why, goodbye = "shutdown") {
      await ready;
      // Invocations are ended first, so the manager hears their answers (cancelled) rather than losing them.
      await actions.stop();
      await link.stop(goodbye);
      await publisher?.stop();
      browser?.stop();
      collector.stop();
      log.info({ reason: why, goodbye }, "worker stopped");
    },
  };
}
