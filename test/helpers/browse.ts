/** Our own mDNS browser, logging the live `_mcp-fleet._tcp` services on every change. Usage: browse.ts <refresh-ms> */
import { FleetBrowser } from "../../src/discovery/browser.js";
import { createLogger } from "../../src/log.js";

const log = createLogger({ name: "browse", level: "info" });
const browser = new FleetBrowser({ log, refreshMs: Number(process.argv[2] ?? 1000) });
browser.on("change", () => log.info({ peers: browser.list().map((p) => ({ name: p.name, addresses: p.addresses })) }, "peers"));
browser.start();
log.info("browsing");
