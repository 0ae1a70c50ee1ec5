import type { HealthState } from "../core/health.js";
import type { HealthEvent } from "../core/registry.js";

/**
 * Limits per-worker transition notifications so a reconnect storm (10,000 workers in 20 s) reaches the MCP
 * client as a few summaries instead of 10,000 messages it cannot usefully show. Up to `burst` transitions pass
 * one by one, refilled at `perSecond`; the rest are counted and `flush` turns them into one digest. Pure: the
 * caller owns the timer and the clock.
 */
export class TransitionDigest {
  private tokens: number;
  private last: number;
  private held: { count: number; byState: Partial<Record<HealthState, number>>; workers: string[] } | null = null;

  constructor(
    private readonly perSecond = 10,
    private readonly burst = 30,
    now = 0,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** True: tell this transition now. False: it was counted into the next digest. */
  offer(e: HealthEvent, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1 && this.held === null) {
      this.tokens -= 1;
      return true;
    }
    this.held ??= { count: 0, byState: {}, workers: [] };
    this.held.count++;
    this.held.byState[e.to] = (this.held.byState[e.to] ?? 0) + 1;
    if (this.held.workers.length < 10) this.held.workers.push(e.worker);
    return false;
  }

  /** The transitions held since the last flush, or null if there were none. */
  flush(): { count: number; byState: Partial<Record<HealthState, number>>; someWorkers: string[] } | null {
    const h = this.held;
    this.held = null;
    return h ? { count: h.count, byState: h.byState, someWorkers: h.workers } : null;
  }
}
