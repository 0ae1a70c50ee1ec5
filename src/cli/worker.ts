import { Command } from "commander";
import { z } from "zod";
import { fields, flag, loadConfig } from "../config/load.js";
import { FleetError } from "../errors.js";
import { createLogger } from "../log.js";
import { startWorker } from "../worker/agent.js";
import { workerEndpoint } from "../worker/link.js";
import { duration, labelsField, logLevelField, logLevelFlag, tlsFields, shutdownOn } from "./common.js";

const schema = z.object({
  ...tlsFields,
  manager: z
    .string()
    .refine((u) => {
      try {
        workerEndpoint(u);
        return true;
      } catch {
        return false;
      }
    }, "must be a URL like wss://manager.example:7443")
    .optional(),
  mdns: z.boolean(),
  labels: labelsField,
  collectInterval: duration({ min: 500, max: 3_600_000 }),
  collectTimeout: duration({ min: 100, max: 600_000 }),
  actionsDir: fields.path,
  mcpServers: fields.path,
  diagnostics: z.boolean(),
  maxActions: fields.positiveInt(256),
  logLevel: logLevelField,
});

export function workerCommand(): Command {
  return new Command("worker")
    .description("run the worker agent: hold one mutual-TLS session to the manager and report this host")
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "this worker's certificate"))
    .addOption(flag("--key <file>", "this worker's private key"))
    .addOption(flag("--manager <url>", "manager address, wss://host:port (default: find it on the LAN by mDNS)"))
    .addOption(flag("--no-mdns", "neither announce this worker nor look for managers on mDNS"))
    .addOption(flag("--labels <k=v,...>", "labels reported to the manager", ""))
    .addOption(flag("--collect-interval <duration>", "how often system status is collected", "5s"))
    .addOption(flag("--collect-timeout <duration>", "how long one collector call may take", "5s"))
    .addOption(flag("--actions-dir <dir>", "command actions this host offers, one *.json file each", "/etc/mcp-fleet/actions.d"))
    .addOption(flag("--mcp-servers <file>", "MCP servers on this host whose tools it offers (mcpServers JSON)", "/etc/mcp-fleet/mcp-servers.json"))
    .addOption(flag("--no-diagnostics", "do not offer the built-in read-only diagnostics"))
    .addOption(flag("--max-actions <n>", "invocations running at once on this host", "4"))
    .addOption(logLevelFlag())
    .action((_opts, cmd: Command) => {
      const o = loadConfig(schema, cmd);
      if (!o.manager && !o.mdns) {
        throw new FleetError("E_CONFIG", "invalid settings:\n  --manager (MCP_FLEET_MANAGER): is required with --no-mdns, which turns finding the manager off");
      }
      const log = createLogger({ name: "worker", level: o.logLevel });
      const agent = startWorker({
        tls: { ca: o.ca, cert: o.cert, key: o.key },
        manager: o.manager,
        mdns: o.mdns,
        labels: o.labels,
        collectIntervalMs: o.collectInterval,
        collectTimeoutMs: o.collectTimeout,
        actionsDir: o.actionsDir,
        mcpServers: o.mcpServers,
        diagnostics: o.diagnostics,
        maxActions: o.maxActions,
        log,
      });
      shutdownOn((signal) => agent.stop(signal));
      process.on("SIGHUP", () => {
        log.info("SIGHUP: reading the actions dir again");
        void agent.reloadActions();
      });
    });
}
