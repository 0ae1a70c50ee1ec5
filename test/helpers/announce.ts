/** Announces one `_mcp-fleet._tcp` service and logs what it is called (after any rename). Usage: announce.ts <name> */
import { Publisher } from "../../src/discovery/publisher.js";
import { createLogger } from "../../src/log.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

const log = createLogger({ name: "announce", level: "info" });
const publisher = new Publisher({
  name: process.argv[2]!,
  port: 9,
  announcement: { role: "worker", fleet: "00000000000000aa", protocol: PROTOCOL_VERSION, id: "probe" },
  log,
  interfaceCheckMs: 1000,
});
await publisher.start();
log.info({ instance: publisher.name }, "announcing");
process.on("SIGTERM", () => void publisher.stop().then(() => process.exit(0)));
