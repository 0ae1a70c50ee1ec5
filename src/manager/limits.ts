import { CONNECT_TIMEOUT_MS } from "../protocol/messages.js";

/** Limits that keep one bad peer from hurting anyone but itself. Each is enforced with its own close code or log line. */
export interface SessionLimits {
  /** Time allowed for the TLS handshake (Node's default is 120 s). */
  handshakeTimeoutMs: number;
  /** Time allowed from TLS to `hello`, including the HTTP upgrade request. */
  helloTimeoutMs: number;
  /** Sustained messages per second per session, and the burst allowed above it. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Sessions open at once. */
  maxSessions: number;
  /** Bytes queued towards a peer that does not read before its session is closed. */
  sendBufferBytes: number;
  /** At most this many TLS handshakes in progress at once; further connections wait their turn (see handshake-gate.ts). */
  maxHandshakes: number;
  /** A connection that waited this long for a handshake slot is dropped: its worker is about to give up anyway. */
  handshakeQueueMs: number;
  /** A handshake unfinished after this is waiting on its peer and stops holding a slot. */
  handshakeSlotMs: number;
  /**
   * New sessions one worker id may open: `sessionBurst` at once, refilled at `sessionsPerMinute`. Beyond it the
   * upgrade is closed with 4006 before `hello`, so a looping identity adds nothing to the registry or its history.
   */
  sessionsPerMinute: number;
  sessionBurst: number;
  /** Sessions from one source address that are past the upgrade and still waiting for `hello`; beyond it: 4012. */
  maxPendingPerAddress: number;
  /** A session that said `goodbye` and stays open is closed (1000) after this. */
  goodbyeGraceMs: number;
}

export const DEFAULT_LIMITS: SessionLimits = {
  handshakeTimeoutMs: 5000,
  helloTimeoutMs: 5000,
  // A worker sends about one message a second; 50 a second sustained is already a fault.
  messagesPerSecond: 50,
  messageBurst: 200,
  maxSessions: 20_000,
  sendBufferBytes: 1024 * 1024,
  // The gate adapts below this to the event loop's lag; the cap bounds a loop turn to well under a second of
  // handshake work (measured with npm run bench: docs/performance.md).
  maxHandshakes: 512,
  // The worker gives up at CONNECT_TIMEOUT_MS; the last seconds are left for the handshake and the upgrade.
  handshakeQueueMs: CONNECT_TIMEOUT_MS - 2000,
  // Our part of a handshake is a few milliseconds of CPU; on a LAN the peer's part is no slower.
  handshakeSlotMs: 250,
  // An honest worker opens one session per manager restart or network fault, and the flapping verdict already
  // speaks at 4 in 5 minutes; 20 at once and one every 6 s after that stops only a loop.
  sessionsPerMinute: 10,
  sessionBurst: 20,
  // A session waits for hello for one round trip, unless the manager is busy. In a 10,000-worker storm through one
  // address (a NAT, the bench on loopback) the gate finishes at most 512 handshakes a turn: twice that is headroom.
  maxPendingPerAddress: 1024,
  // The agent closes right after its goodbye; a peer still there after a second is holding the socket on purpose.
  goodbyeGraceMs: 1000,
};

// Shared: a default closure per bucket would be one more object per session.
const monotonicNow = () => performance.now();

/** A token bucket on an injected clock: `take()` is false once the peer is over its rate. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = monotonicNow,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
