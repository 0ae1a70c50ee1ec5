/**
 * Lets TLS handshakes into the manager a bounded number at a time; the connections behind them wait, unread, in
 * arrival order. See docs/performance.md, "Reconnect storms".
 *
 * Why: Node starts a handshake for every connection it accepts, and the event loop then serves all of them in
 * turn. When 10,000 workers reconnect at once, thousands of handshakes each get a sliver of the one thread, none
 * finishes for many seconds, and every timer in the process (hello, handshake, the workers' own) runs out while
 * the work it guards is queued. Work done for a connection that then times out is lost, and the worker comes back
 * later to pay again. With the gate, handshakes finish at the rate the CPU allows, first come first served.
 *
 * A waiting connection costs a descriptor and a paused socket; nothing is read from it. One that waited longer than
 * a worker would wait for it (`maxWaitMs`) is shed: its worker has given up or is about to, so the handshake
 * would be wasted work.
 */

/** What the gate needs of a connection: a key that the finished TLS socket shares, and a way to drop it. */
export interface Waiting {
  readonly key: string;
  start(): void;
  shed(): void;
}

export interface GateOptions {
  /**
   * Handshakes in progress at once: the limit moves between `minInFlight` and `maxInFlight` with the event
   * loop's lag (see `observeLag`), starting at the minimum.
   */
  minInFlight: number;
  maxInFlight: number;
  /** Lag above this halves the limit; below it, while connections wait, the limit grows by `minInFlight`. */
  lagBoundMs: number;
  /**
   * A handshake slower than this stops counting against `maxInFlight`: it is waiting for its peer, not for us.
   * A peer that stalls its handshake on purpose holds a slot only this long.
   */
  slotMs: number;
  /** A connection that waited this long is shed instead of started. */
  maxWaitMs: number;
  now?: () => number;
}

/** The gate's bookkeeping, with no I/O: a FIFO of waiting connections and the handshakes in flight. */
export class HandshakeGate {
  private readonly waiting: Array<{ conn: Waiting; at: number }> = [];
  private head = 0;
  /** Key → admission time; insertion order is admission order, so the oldest come first. */
  private readonly inFlight = new Map<string, number>();
  private readonly now: () => number;
  /** Connections shed since the last `takeShed()`. */
  private shedCount = 0;
  private pumping = false;

  private limit: number;
  /** The last lag observed was over the bound: slow handshakes are then slow because of us. */
  private congested = false;

  constructor(private readonly options: GateOptions) {
    this.now = options.now ?? (() => performance.now());
    this.limit = options.minInFlight;
  }

  /** The current limit on handshakes in flight. */
  get inFlightLimit(): number {
    return this.limit;
  }

  /**
   * How late the last periodic check ran. A busy loop means the CPU is the bottleneck: fewer handshakes at once,
   * so each finishes and timers stay on time. An idle loop with connections waiting means the handshakes are
   * waiting on their peers (slow or distant clients): more at once. Additive increase, multiplicative decrease.
   */
  observeLag(lagMs: number): void {
    this.congested = lagMs > this.options.lagBoundMs;
    if (this.congested) this.limit = Math.max(this.options.minInFlight, Math.floor(this.limit / 2));
    else if (this.queued > 0) this.limit = Math.min(this.options.maxInFlight, this.limit + this.options.minInFlight);
  }

  get queued(): number {
    return this.waiting.length - this.head;
  }

  get active(): number {
    return this.inFlight.size;
  }

  /** A new connection: started now if a slot is free, otherwise queued. */
  arrive(conn: Waiting): void {
    this.waiting.push({ conn, at: this.now() });
    this.pump();
  }

  /** The handshake for `key` ended (finished, failed or the connection closed). Unknown keys are ignored. */
  finished(key: string): void {
    if (this.inFlight.delete(key)) this.pump();
  }

  /** Sheds the over-age and stops counting stale handshakes, then starts whatever fits. Call it periodically. */
  pump(): void {
    // Starting a handshake can end another synchronously (a socket already gone), which calls back in here.
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.admit();
    } finally {
      this.pumping = false;
    }
  }

  private admit(): void {
    const now = this.now();
    // A slow handshake waits on its peer only while our own loop keeps time. When the loop lags, handshakes are
    // slow because of us, and freeing their slots would start yet more of them: the pile-up the gate prevents.
    for (const [key, at] of this.inFlight) {
      if (this.congested || now - at < this.options.slotMs) break;
      this.inFlight.delete(key);
    }
    // Arrival order puts the oldest at the front: shed those first, even when no slot is free, so a wedged gate
    // does not keep connections nobody will use.
    while (this.queued > 0 && now - this.waiting[this.head]!.at > this.options.maxWaitMs) {
      this.shedCount++;
      this.takeFront().shed();
    }
    while (this.queued > 0 && this.inFlight.size < this.limit) {
      const conn = this.takeFront();
      this.inFlight.set(conn.key, now);
      conn.start();
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  private takeFront(): Waiting {
    const { conn } = this.waiting[this.head]!;
    this.waiting[this.head++] = undefined as never;
    return conn;
  }

  /** How many were shed since the last call. */
  takeShed(): number {
    const n = this.shedCount;
    this.shedCount = 0;
    return n;
  }

  /** Sheds everything waiting (the manager is stopping). */
  close(): void {
    while (this.queued > 0) this.takeFront().shed();
    this.waiting.length = 0;
    this.head = 0;
    this.inFlight.clear();
  }
}
