/**
 * A rogue on the lab LAN: announces `_mcp-fleet._tcp` as a manager of the real fleet (it copies the fleet id,
 * which anyone can read off the air) but holds a certificate from its own CA. It accepts any client certificate,
 * so the only thing between it and a worker's hello is the worker's check of the manager's certificate.
 * Prints one JSON line per TLS handshake, upgrade and message. Usage: rogue-manager.ts <certs-dir> <fleet-id>
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { Publisher } from "../../src/discovery/publisher.js";
import { createLogger } from "../../src/log.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

const [dir, fleet] = process.argv.slice(2) as [string, string];
const say = (event: string, extra: Record<string, unknown> = {}) => console.log(JSON.stringify({ event, ...extra }));

const server = createServer({
  ca: readFileSync(join(dir, "ca.pem")),
  cert: readFileSync(join(dir, "manager.pem")),
  key: readFileSync(join(dir, "manager-key.pem")),
  requestCert: true,
  rejectUnauthorized: false,
});
server.on("secureConnection", (s) => say("tls", { from: s.remoteAddress }));
server.on("tlsClientError", (err) => say("tls-failed", { err: err.message.trim().slice(0, 200) }));
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  say("upgrade", { from: req.socket.remoteAddress });
  ws.on("message", (data) => say("message", { data: String(data).slice(0, 300) }));
});
server.listen(7443, () => say("listening"));
const publisher = new Publisher({
  name: "mcp-fleet manager on rogue",
  port: 7443,
  announcement: { role: "manager", fleet, protocol: PROTOCOL_VERSION },
  log: createLogger({ name: "rogue", level: "warn" }),
});
await publisher.start();
say("announced");
process.on("SIGTERM", () => void publisher.stop().then(() => process.exit(0)));
