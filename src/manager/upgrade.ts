import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../log.js";
import type { LogThrottle } from "../log-throttle.js";
import { closeReason, type AppCloseCode } from "../protocol/close-codes.js";
import { isJoinSocket, peerCertificate } from "../tls/contexts.js";
import { closeCause } from "../metrics/causes.js";
import type { ManagerMetrics } from "../metrics/sink.js";
import type { SessionAdmission } from "./admission.js";
import type { FrontDoor } from "./front-door.js";
import type { SessionTable } from "./session-table.js";
import { WorkerSession, type SessionContext } from "./session.js";

/** Workers connect here; other paths are refused, leaving room for other endpoints later. */
export const WORKER_PATH = "/worker";

export interface UpgradeParts {
  wss: WebSocketServer;
  door: Pick<FrontDoor, "upgraded">;
  admission: SessionAdmission;
  sessions: SessionTable;
  context: SessionContext;
  log: Logger;
  throttle: LogThrottle;
  metrics?: Pick<ManagerMetrics, "refused">;
}

// A refused peer may still send (an oversized frame, say) before our close lands; ws reports that as an 'error'
// event, which with no listener would end the process. The close that follows says all there is to say.
const ignore = () => {};

/** Ends a just-upgraded socket with a code and reason; one that never answers the close is cut off. */
function refuse(ws: WebSocket, code: AppCloseCode, detail: string): void {
  ws.on("error", ignore);
  ws.close(code, closeReason(code, detail));
  setTimeout(() => ws.terminate(), 2000).unref();
}

/** The peer's address as people write it: listening dual-stack, IPv4 peers arrive as ::ffff:a.b.c.d. */
export function peerAddress(socket: TLSSocket): string | null {
  return socket.remoteAddress?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "") ?? null;
}

/**
 * The https server's `upgrade` listener: a TLS connection that asked for the worker endpoint becomes a
 * WebSocket, and, if the admission lets it, a worker session waiting for its `hello`.
 */
export function upgradeHandler(p: UpgradeParts): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, rawSocket, head) => {
    const socket = rawSocket as TLSSocket;
    p.door.upgraded(socket);
    if (isJoinSocket(socket)) {
      // No certificate: such a connection may ask to join, never become a session.
      p.metrics?.refused("join_upgrade");
      p.throttle.warn("join-upgrade", { address: peerAddress(socket) }, "refused: upgrade on a join connection (no client certificate)");
      socket.end("HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n", () => socket.destroy());
      return;
    }
    const path = new URL(req.url ?? "/", "https://manager").pathname;
    if (path !== WORKER_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
      return;
    }
    const cert = peerCertificate(socket);
    if (!cert) {
      // gateUnauthorized destroyed such sockets already; checked again so no refactoring can open the door.
      p.log.warn({ address: socket.remoteAddress }, "upgrade without an authorized client certificate");
      socket.destroy();
      return;
    }
    // A resumed session carries the verdict of its first handshake, which may predate the certificate's expiry.
    const now = Date.now();
    if (now > cert.notAfter.getTime() || now < cert.notBefore.getTime()) {
      p.metrics?.refused("tls_expired");
      p.throttle.warn("tls-refused", { address: socket.remoteAddress, reason: "CERT_HAS_EXPIRED", resumed: socket.isSessionReused() }, "TLS client refused: certificate not accepted");
      socket.destroy();
      return;
    }
    const address = peerAddress(socket);
    p.wss.handleUpgrade(req, socket, head, (ws) => {
      const refusal = p.admission.judge({
        identity: cert.identity,
        serialNumber: cert.serialNumber,
        address,
        sessions: p.sessions.size,
        pendingFromAddress: p.sessions.pendingFrom(address),
      });
      if (refusal) {
        p.metrics?.refused(closeCause(refusal.code) ?? "other");
        p.throttle.warn(refusal.kind, refusal.fields, refusal.msg);
        refuse(ws, refusal.code, refusal.detail);
        return;
      }
      p.sessions.add(new WorkerSession(ws, cert.identity!, cert, address, socket.isSessionReused(), p.context));
    });
  };
}
