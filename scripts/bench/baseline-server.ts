/**
 * The bare baseline of `npm run bench`: the manager's TLS listener settings (the same function builds them) and a
 * WebSocket server with the same options, doing nothing but JSON.parse on each message. Whatever the manager
 * costs beyond this is ours; this much is Node, OpenSSL and ws.
 */
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { MAX_FRAME_BYTES } from "../../src/protocol/messages.js";
import { loadTlsMaterial, managerServerOptions } from "../../src/tls/contexts.js";

const [ca, cert, key, portArg, ticketKeysHex] = process.argv.slice(2);
if (!ca || !cert || !key) {
  process.stderr.write("usage: baseline-server <ca> <cert> <key> [port] [ticket keys, 96 hex digits]\n");
  process.exit(2);
}
const material = loadTlsMaterial({ ca, cert, key }, "manager");
// Given the keys of the server it replaces, it resumes that server's sessions, as a restarted manager does.
const ticketKeys = ticketKeysHex ? Buffer.from(ticketKeysHex, "hex") : undefined;
const server = createServer({ ...managerServerOptions(material), sessionTimeout: 86_400, ticketKeys });
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
let messages = 0;
let parsedBytes = 0;
server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("error", () => {});
    ws.on("message", (data) => {
      const parsed = JSON.parse(String(data)) as { type?: string };
      messages++;
      parsedBytes += parsed.type ? 1 : 0;
    });
  });
});
// The manager's backlog, so a reconnect storm against this server is comparable.
server.listen(Number(portArg ?? 0), "127.0.0.1", 4096, () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
// Read by nobody; keeps the parse from being optimised away.
setInterval(() => void (messages + parsedBytes), 60_000).unref();
