import { readFileSync } from "node:fs";
import { connect, type TLSSocket } from "node:tls";

export interface TlsProbeResult {
  /** The session ticket the manager issued, to offer in a later probe. */
  session: Buffer | undefined;
  reused: boolean;
  /** The manager ended the connection; otherwise it let it stay, silent, for a second. */
  endedByManager: boolean;
}

/**
 * One TLS connection to the manager as a worker, offering `session`; resolves once the manager ended it or let it
 * stay (a socket the manager let in stays open until its hello timeout: a second is plenty to tell). With
 * `anyManager` the client takes any manager certificate, for tests whose subject is the manager's verdict on the
 * client when the two no longer share a CA.
 */
export function tlsProbe(
  port: number,
  tls: { ca: string; cert: string; key: string },
  session?: Buffer,
  { anyManager = false }: { anyManager?: boolean } = {},
): Promise<TlsProbeResult> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({
      host: "127.0.0.1",
      port,
      ca: readFileSync(tls.ca),
      cert: readFileSync(tls.cert),
      key: readFileSync(tls.key),
      session,
      ...(anyManager ? { rejectUnauthorized: false } : { checkServerIdentity: () => undefined }),
    });
    let ticket: Buffer | undefined;
    let reused = false;
    socket.on("session", (s: Buffer) => (ticket = s));
    socket.on("secureConnect", () => (reused = socket.isSessionReused()));
    socket.on("error", () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ session: ticket, reused, endedByManager: false });
    }, 1000);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ session: ticket, reused, endedByManager: true });
    });
    socket.setTimeout(5000, () => reject(new Error("TLS probe stalled")));
  });
}
