import { createServer, type Server, type Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import type { LogThrottle } from "../log-throttle.js";
import type { ManagerMetrics } from "../metrics/sink.js";
import { HandshakeGate } from "./handshake-gate.js";
import type { SessionLimits } from "./limits.js";

const LISTEN_BACKLOG = 4096;
// The gate starts this many handshakes at once and adapts up to limits.maxHandshakes; a tick later than this by
// more than the bound means the loop is saturated (see HandshakeGate.observeLag).
const HANDSHAKES_MIN = 32;
const HANDSHAKE_LAG_BOUND_MS = 50;

// Node keeps a socket's peer address once read, so a closed socket still has its key, and the TLS socket that
// wraps a connection shares its connection's key.
const keyOf = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;

/**
 * The manager's listening socket, in front of the TLS server. A plain `net.Server` accepts connections paused and
 * unread, lets the handshake gate decide when each one's TLS handshake starts, and then hands the connection to the
 * TLS server (`emit("connection")`, the way a `net.Server` delivers them itself). The TLS server never listens.
 *
 * It also holds every connection from accept until its WebSocket upgrade: one past TLS that has not sent its
 * upgrade request within the hello timeout is dropped (the TLS server's HTTP timeouts run only on a server that
 * listens itself), and a stopping manager destroys whatever is left.
 */
export class FrontDoor {
  readonly gate: HandshakeGate;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Secure sockets waiting for their upgrade request → deadline; arrival order is deadline order. */
  private readonly awaitingUpgrade = new Map<TLSSocket, number>();
  private lastTickAt = performance.now();

  constructor(
    private readonly tls: TlsServer,
    private readonly limits: SessionLimits,
    private readonly throttle: LogThrottle,
    private readonly metrics?: Pick<ManagerMetrics, "refused">,
  ) {
    this.gate = new HandshakeGate({
      minInFlight: Math.min(HANDSHAKES_MIN, limits.maxHandshakes),
      maxInFlight: limits.maxHandshakes,
      lagBoundMs: HANDSHAKE_LAG_BOUND_MS,
      slotMs: limits.handshakeSlotMs,
      maxWaitMs: limits.handshakeQueueMs,
    });
    const { gate, sockets } = this;
    // One listener for every socket: a closure each would stay with the connection for its whole life.
    function onRawClose(this: Socket) {
      sockets.delete(this);
      gate.finished(keyOf(this));
    }
    // noDelay as an https.Server sets it for its own connections: a welcome or a request is not held back by Nagle.
    this.server = createServer({ pauseOnConnect: true, noDelay: true }, (raw: Socket) => {
      // No peer address: the peer reset the connection before it was accepted.
      if (!raw.remoteAddress || !raw.remotePort) return void raw.destroy();
      sockets.add(raw);
      raw.on("close", onRawClose);
      gate.arrive({ key: keyOf(raw), start: () => tls.emit("connection", raw), shed: () => raw.destroy() });
    });
    // Prepended, so the slot is free before the rest of the secure-connection work.
    tls.prependListener("secureConnection", (socket: TLSSocket) => gate.finished(keyOf(socket)));
    tls.on("secureConnection", (socket: TLSSocket) => {
      if (!socket.destroyed) this.awaitingUpgrade.set(socket, performance.now() + limits.helloTimeoutMs);
    });
  }

  /** Listens; resolves with the port. */
  listen(port: number, host: string | undefined): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      // Node's default backlog of 511 overflows when thousands of workers reconnect at once: dropped SYNs are
      // retried only after 1 s, 3 s, 7 s. The kernel caps this at net.core.somaxconn (4096 on current Linux).
      this.server.listen(port, host, LISTEN_BACKLOG, () => {
        this.server.off("error", reject);
        const address = this.server.address();
        resolve(typeof address === "object" && address ? address.port : port);
      });
    });
  }

  /** The connection became a WebSocket: from here its session keeps time. */
  upgraded(socket: TLSSocket): void {
    this.awaitingUpgrade.delete(socket);
  }

  /** Measures the loop's lag for the gate; called first in every tick, `tickMs` apart. */
  observeLag(tickAt: number, tickMs: number): void {
    this.gate.observeLag(tickAt - this.lastTickAt - tickMs);
    this.lastTickAt = tickAt;
  }

  /** Starts what the gate allows, logs what it shed, drops connections that never asked to upgrade. */
  pump(now = performance.now()): void {
    this.gate.pump();
    const shed = this.gate.takeShed();
    if (shed > 0) {
      for (let i = 0; i < shed; i++) this.metrics?.refused("handshake_shed");
      this.throttle.warn("shed", { shed, waiting: this.gate.queued, maxWaitMs: this.limits.handshakeQueueMs }, "connections dropped: they waited too long for a TLS handshake");
    }
    for (const [socket, deadline] of this.awaitingUpgrade) {
      if (deadline > now) break;
      this.awaitingUpgrade.delete(socket);
      if (socket.destroyed) continue;
      this.metrics?.refused("no_upgrade");
      this.throttle.warn("no-upgrade", { address: socket.remoteAddress }, "dropped: no upgrade request in time");
      socket.destroy();
    }
  }

  /** Stops accepting; resolves once every connection it accepted has closed (see `destroyAll`). */
  stopAccepting(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.gate.close();
    return closed;
  }

  /** Destroys every connection still open: the last step of a shutdown. */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.awaitingUpgrade.clear();
  }
}
