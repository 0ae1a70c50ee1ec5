/**
 * A rogue on the lab LAN: announces `_mcp-fleet._tcp` as a manager of the real fleet (it copies the fleet id and,
 * given one, the CA pin's prefix: anyone can read both off the air) but holds a certificate from its own CA. It
 * accepts any client certificate, or none, and answers any server name, so the only thing between it and a
 * worker's hello, or a joining host's request, is that host's check of the manager's certificate.
 * Prints one JSON line per TLS handshake, upgrade, HTTP request and message, and one per connection closed with
 * the application bytes it received after the handshake.
 * Usage: rogue-manager.ts <certs-dir> <fleet-id> [pin-prefix]
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { join } from "node:path";
import { WebSocketServer } from "ws";
import { Publisher } from "../../src/discovery/publisher.js";
import { createLogger } from "../../src/log.js";
import { JOIN_SERVERNAME } from "../../src/protocol/join.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

const [dir, fleet, pin] = process.argv.slice(2) as [string, string, string | undefined];
const say = (event: string, extra: Record<string, unknown> = {}) => console.log(JSON.stringify({ event, ...extra }));

const tls = { ca: readFileSync(join(dir, "ca.pem")), cert: readFileSync(join(dir, "manager.pem")), key: readFileSync(join(dir, "manager-key.pem")) };
// To a joining host, its chain up to its own CA, as the real manager presents it on the join name.
const joinContext = createSecureContext({ ...tls, cert: `${tls.cert.toString().trim()}\n${tls.ca.toString().trim()}\n` });
const server = createServer({
  ...tls,
  requestCert: true,
  rejectUnauthorized: false,
  SNICallback: (name, cb) => cb(null, name === JOIN_SERVERNAME ? joinContext : undefined),
});
server.on("secureConnection", (s) => {
  const from = s.remoteAddress;
  say("tls", { from, servername: s.servername || null });
  // Everything a peer sends once the handshake is done: a listener added here also unhooks the HTTP parser's
  // native read path, so the count sees every byte (the parser still gets them).
  let bytes = 0;
  s.on("data", (d: Buffer) => (bytes += d.length));
  s.once("close", () => say("closed", { from, bytes }));
});
// A joining host that refuses the chain hangs up before its own Finished is read: the handshake fails here.
// A joining host that refuses the chain hangs up before its own Finished is read: the handshake fails here. By
// then the sockets have lost their addresses, so each TCP connection's is noted when it arrives.
const peers = new WeakMap<object, string | undefined>();
server.on("connection", (raw: Socket) => peers.set(raw, raw.remoteAddress));
server.on("tlsClientError", (err, s) => {
  const from = s.remoteAddress ?? peers.get((s as unknown as { _parent?: object })._parent ?? s);
  say("tls-failed", { err: err.message.trim().slice(0, 200), from, servername: s.servername || null });
});
server.on("request", (req, res) => {
  say("request", { from: req.socket.remoteAddress, method: req.method, path: req.url });
  res.writeHead(500, { connection: "close" }).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  say("upgrade", { from: req.socket.remoteAddress });
  ws.on("message", (data) => say("message", { data: String(data).slice(0, 300) }));
});
server.listen(7443, () => say("listening"));
const publisher = new Publisher({
  name: "mcp-fleet manager on rogue",
  port: 7443,
  announcement: { role: "manager", fleet, protocol: PROTOCOL_VERSION, ...(pin ? { pin } : {}) },
  log: createLogger({ name: "rogue", level: "warn" }),
});
await publisher.start();
say("announced");
process.on("SIGTERM", () => void publisher.stop().then(() => process.exit(0)));
