import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { Command } from "commander";
import { z } from "zod";
import { fields, flag, loadConfig } from "../config/load.js";
import { errorMessage, FleetError } from "../errors.js";
import { createLogger } from "../log.js";
import { parseJoinString, type JoinString } from "../protocol/join.js";
import { WorkerId } from "../protocol/messages.js";
import { toHostname } from "../protocol/text.js";
import { startWorker } from "../worker/agent.js";
import { DEFAULT_STATE_DIR } from "../worker/join/enrolled-identity.js";
import { startEnrolledWorker, workerIdFromHostname } from "../worker/join/start-enrolled.js";
import { workerEndpoint } from "../worker/link.js";
import { duration, labelsField, logLevelField, logLevelFlag, tlsFields, shutdownOn } from "./common.js";

const schema = z.object({
  ca: tlsFields.ca,
  cert: tlsFields.cert.optional(),
  key: tlsFields.key.optional(),
  join: z.string().optional(),
  joinFile: fields.path.optional(),
  stateDir: fields.path,
  workerId: z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(WorkerId)
    .optional(),
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

/**
 * The join string from --join or --join-file, checked before anything starts. It is a secret: errors name the flag
 * and the expected form, never the text given.
 */
function joinString(o: { join?: string; joinFile?: string; cert?: string; key?: string }): JoinString | null {
  if (o.join !== undefined && o.joinFile !== undefined) {
    throw new FleetError("E_CONFIG", "invalid settings:\n  --join (MCP_FLEET_JOIN) and --join-file (MCP_FLEET_JOIN_FILE): give one of them");
  }
  if ((o.join !== undefined || o.joinFile !== undefined) && (o.cert !== undefined || o.key !== undefined)) {
    throw new FleetError(
      "E_CONFIG",
      "invalid settings:\n  --join/--join-file and --cert/--key: give one or the other; a joining worker is issued its certificate and keeps it in --state-dir",
    );
  }
  if ((o.cert === undefined) !== (o.key === undefined)) {
    throw new FleetError("E_CONFIG", "invalid settings:\n  --cert (MCP_FLEET_CERT) and --key (MCP_FLEET_KEY): give both, or neither to use --state-dir");
  }
  let text = o.join;
  if (o.joinFile !== undefined) {
    try {
      text = readFileSync(o.joinFile, "utf8");
    } catch (err) {
      throw new FleetError("E_CONFIG", `invalid settings:\n  --join-file (MCP_FLEET_JOIN_FILE): cannot read ${o.joinFile}: ${errorMessage(err)}`);
    }
  }
  if (text === undefined) return null;
  const parsed = parseJoinString(text);
  if (!parsed.ok) {
    const from = o.joinFile !== undefined ? `--join-file ${o.joinFile}` : "--join (MCP_FLEET_JOIN)";
    throw new FleetError("E_CONFIG", `invalid settings:\n  ${from}: not a join string: ${parsed.error}`);
  }
  return parsed.join;
}

export function workerCommand(): Command {
  return new Command("worker")
    .description("run the worker agent: hold one mutual-TLS session to the manager and report this host")
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "this worker's certificate"))
    .addOption(flag("--key <file>", "this worker's private key"))
    .addOption(flag("--join <string>", "join the fleet with this join string (from `mcp-fleet token create`) unless --state-dir already holds an identity"))
    .addOption(flag("--join-file <file>", "read the join string from this file (keeps it out of the process list)"))
    .addOption(flag("--state-dir <dir>", "where a joined worker keeps its CA, certificate and key", DEFAULT_STATE_DIR))
    .addOption(flag("--worker-id <id>", "the id to ask for when joining (default: this host name's first label)"))
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
      const join = joinString(o);
      const log = createLogger({ name: "worker", level: o.logLevel });
      const common = {
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
      };
      let agent: { stop(why: string): Promise<void>; reloadActions(): Promise<void> };
      if (o.cert && o.key) {
        agent = startWorker({ ...common, tls: { ca: o.ca, cert: o.cert, key: o.key } });
      } else {
        const requestedId = o.workerId ?? workerIdFromHostname(hostname());
        const enrolled = startEnrolledWorker({ ...common, stateDir: o.stateDir, join, requestedId, hostname: toHostname(hostname(), requestedId) });
        enrolled.started.catch((err: unknown) => {
          log.fatal({ err: errorMessage(err) }, "could not keep the identity the fleet issued; stopping");
          process.exit(1);
        });
        agent = enrolled;
      }
      shutdownOn((signal) => agent.stop(signal));
      process.on("SIGHUP", () => {
        log.info("SIGHUP: reading the actions dir again");
        void agent.reloadActions();
      });
    });
}
