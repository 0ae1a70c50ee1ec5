/**
 * Time as the core sees it. `monotonic` measures ages and deadlines (it never jumps with NTP or DST); `wall`
 * only stamps events for people. Tests inject a fake clock that they move by hand.
 */
export interface Clock {
  /** Milliseconds on a monotonic clock with an arbitrary origin. */
  monotonic(): number;
  /** Milliseconds since the Unix epoch. */
  wall(): number;
}

export const systemClock: Clock = {
  monotonic: () => performance.now(),
  wall: () => Date.now(),
};

/** A clock that moves only when told to: both readings advance together. */
export class FakeClock implements Clock {
  private mono = 0;
  constructor(private wallMs = Date.UTC(2026, 0, 1)) {}
  monotonic(): number {
    return this.mono;
  }
  wall(): number {
    return this.wallMs;
  }
  advance(ms: number): void {
    this.mono += ms;
    this.wallMs += ms;
  }
}
