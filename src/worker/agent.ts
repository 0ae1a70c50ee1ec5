import { hostname, release } from "node:os";
import { FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Labels } from "../protocol/messages.js";
import { isMethodName } from "../protocol/methods.js";
import { loadTlsMaterial, workerClientOptions, type TlsPaths } from "../tls/contexts.js";
import { VERSION } from "../version.js";
import { Collector } from "./collector.js";
import { Link } from "./link.js";

export interface WorkerOptions {
  tls: TlsPaths;
  manager: string;
  labels: Labels;
  collectIntervalMs: number;
  collectTimeoutMs: number;
  log: Logger;
}

export interface WorkerAgent {
  readonly id: string;
  stop(reason: string): Promise<void>;
}

/** The worker agent: its identity comes from its certificate, its pace from the manager. */
export function startWorker(options: WorkerOptions): WorkerAgent {
  const material = loadTlsMaterial(options.tls, "worker");
  const id = material.self.identity.id;
  const log = options.log.child({ worker: id });
  const collector = new Collector({ intervalMs: options.collectIntervalMs, timeoutMs: options.collectTimeoutMs, log });
  const link = new Link({
    url: options.manager,
    tls: workerClientOptions(material),
    hello: {
      id,
      hostname: hostname(),
      agentVersion: VERSION,
      labels: options.labels,
      platform: { os: process.platform, arch: process.arch, release: release() },
    },
    metrics: () => collector.summary(),
    onRequest: async (method) => {
      if (!isMethodName(method)) throw Object.assign(new Error(`unknown method ${method}`), { code: "unknown_method" });
      switch (method) {
        case "status.snapshot":
          return collector.snapshot();
      }
    },
    log,
  });
  const days = (material.self.notAfter.getTime() - Date.now()) / 86_400_000;
  log.info(
    { fleet: material.self.identity.fleet, manager: options.manager, certExpiresInDays: Math.floor(days), version: VERSION },
    "worker starting",
  );
  if (days <= 0) throw new FleetError("E_CERT", `this worker's certificate expired on ${material.self.notAfter.toISOString()}`);
  collector.start();
  link.start();
  return {
    id,
    async stop(reason) {
      await link.stop(reason);
      collector.stop();
      log.info({ reason }, "worker stopped");
    },
  };
}
