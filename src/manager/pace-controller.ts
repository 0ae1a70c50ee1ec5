import type { Registry } from "../core/registry.js";
import { pacedInterval, shouldRepace } from "../core/pace.js";
import type { Logger } from "../log.js";

export type PacedRegistry = Pick<Registry, "expectedSessions" | "healthPolicy" | "setPolicy">;

/**
 * The heartbeat interval the fleet is told to keep, following the fleet's size (see docs/architecture.md, "The
 * pace"). Lengthening applies to the health bound at once and then reaches the workers; shortening reaches the
 * workers first and tightens the bound only after two old intervals, so nobody is judged by a pace they have not
 * heard of yet.
 */
export class PaceController {
  private current: number;
  private tighten: NodeJS.Timeout | null = null;

  constructor(
    private readonly registry: PacedRegistry,
    private readonly baseMs: number,
    private readonly budgetPerSecond: number,
    private readonly log: Logger,
  ) {
    // A restarted manager paces for the fleet it expects back, so the first of 10,000 returning workers are not
    // welcomed at the base interval and then slowed down one step at a time while the rest still reconnect.
    const expected = registry.expectedSessions();
    this.current = this.paceFor(expected);
    if (this.current !== baseMs) {
      registry.setPolicy({ ...registry.healthPolicy, heartbeatIntervalMs: this.current });
      log.info({ to: this.current, expected }, "heartbeat interval set for the fleet expected back");
    }
  }

  /** The interval workers are told to keep; new sessions start at it. */
  get interval(): number {
    return this.current;
  }

  /** Re-checks the pace against the expected fleet; `broadcast` tells every open session the new one. */
  repace(connected: number, broadcast: (intervalMs: number) => void): void {
    if (this.budgetPerSecond <= 0) return;
    // Compared with what the workers were told, not with the health bound: while a shortening is pending the
    // bound is still the older, longer interval.
    const current = this.current;
    const expected = this.registry.expectedSessions();
    const desired = this.paceFor(expected);
    if (!shouldRepace(current, desired)) return;
    if (this.tighten) clearTimeout(this.tighten);
    this.tighten = null;
    this.log.info({ from: current, to: desired, connected, expected }, "heartbeat interval changed");
    const apply = () => this.registry.setPolicy({ ...this.registry.healthPolicy, heartbeatIntervalMs: desired });
    if (desired > current) apply();
    else this.tighten = setTimeout(apply, 2 * current);
    broadcast(desired);
    this.current = desired;
  }

  stop(): void {
    if (this.tighten) clearTimeout(this.tighten);
    this.tighten = null;
  }

  private paceFor(connected: number): number {
    return pacedInterval({ baseMs: this.baseMs, budgetPerSecond: this.budgetPerSecond, connected });
  }
}
