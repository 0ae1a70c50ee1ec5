import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { Command } from "commander";
import { z } from "zod";
import { StdioBridge } from "../bridge/bridge.js";
import { classify } from "../bridge/failure.js";
import { announcedManagers, mcpUrl } from "../bridge/locate.js";
import { probe } from "../bridge/probe.js";
import { mutualTlsFetch } from "../client/connect.js";
import { fields, flag, loadConfig } from "../config/load.js";
import { FleetBrowser } from "../discovery/browser.js";
import { fleetIdFromCa } from "../discovery/txt.js";
import { FleetError } from "../errors.js";
import { createLogger } from "../log.js";
import { MCP_ROLES } from "../mcp/principal.js";
import { loadTlsMaterial } from "../tls/contexts.js";
import { Backoff } from "../worker/backoff.js";
import { duration, logLevelField, logLevelFlag, shutdownOn } from "./common.js";

const schema = z.object({
  manager: z.string().min(1).optional(),
  ca: fields.path,
  cert: fields.path,
  key: fields.path,
  reconnectMax: duration({ min: 100, max: 600_000 }),
  connectWait: duration({ min: 0, max: 600_000 }),
  logLevel: logLevelField,
});

/** How long, without --manager, the bridge listens for a manager's mDNS announcement before each try counts as failed. */
const MDNS_WAIT_MS = 3000;

export function connectCommand(): Command {
  return new Command("connect")
    .description("a stdio MCP server for Claude Desktop and other stdio-only clients, forwarding to a manager --daemon's /mcp over mutual TLS")
    .addOption(flag("--manager <url>", "the manager, e.g. https://manager.example:7443 (default: found on mDNS by the fleet CA)"))
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "an operator's or viewer's certificate (certs issue --role operator <name>)"))
    .addOption(flag("--key <file>", "its private key"))
    .addOption(flag("--reconnect-max <duration>", "longest wait between tries to reach the manager again (jittered)", "10s"))
    .addOption(flag("--connect-wait <duration>", "how long the client's initialize waits for a manager not reachable yet", "20s"))
    .addOption(logLevelFlag())
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(schema, cmd);
      const log = createLogger({ name: "bridge", level: o.logLevel });
      const material = loadTlsMaterial({ ca: o.ca, cert: o.cert, key: o.key }, MCP_ROLES);
      // The event stream may stay quiet for hours on a calm fleet: undici's 5-minute body timeout would end it.
      const tls = mutualTlsFetch(material, { bodyTimeout: 0 });
      const fixed = o.manager ? mcpUrl(o.manager) : null;
      let browser: FleetBrowser | null = null;
      if (!fixed) {
        browser = new FleetBrowser({ log });
        browser.start();
      }
      const locate = fixed ? () => Promise.resolve(fixed) : announcedManagers(fleetIdFromCa(material.ca), browser!, MDNS_WAIT_MS);
      if (fixed) await preflight(fixed, tls.fetch, log);
      const bridge = new StdioBridge(new StdioServerTransport(), {
        locate,
        fetch: tls.fetch,
        log,
        backoff: new Backoff(250, o.reconnectMax),
        firstConnectWaitMs: o.connectWait,
      });
      shutdownOn(async (why) => {
        await bridge.stop(why);
        browser?.stop();
        await tls.close();
      });
      // The client closing our stdin is how it says goodbye (and how Claude Desktop quits us).
      process.stdin.once("end", () => void bridge.stop("stdin closed"));
      log.info({ manager: fixed?.href ?? "mDNS", as: material.self.identity.id, role: material.self.identity.role }, "bridge serving MCP on stdio");
      try {
        await bridge.run();
      } finally {
        browser?.stop();
        await tls.close().catch(() => {});
      }
    });
}

/** A refused certificate is the user's to fix: exit 2 with why. A manager not up yet is waited for later. */
async function preflight(url: URL, fetch: Parameters<typeof probe>[1], log: ReturnType<typeof createLogger>): Promise<void> {
  try {
    await probe(url, fetch);
  } catch (err) {
    const failure = classify(err);
    if (failure.permanent) throw new FleetError("E_CERT", `the manager at ${url.href} cannot be used with these certificates: ${failure.message}`);
    log.warn({ manager: url.href, err: failure.message }, "the manager is unreachable for now; the bridge keeps trying");
  }
}
