import { missedBoundMs } from "../core/health.js";
import type { Registry } from "../core/registry.js";
import { CloseCode } from "../protocol/close-codes.js";
import type { FrontDoor } from "./front-door.js";
import type { PaceController } from "./pace-controller.js";
import type { SessionRate } from "./session-rate.js";
import type { SessionTable } from "./session-table.js";

// The registry's deadlines are checked this often; detection of a silent worker is late by at most this much.
export const TICK_MS = 100;
// Slow chores: with 10,000 workers each is a walk over all of them.
const SLOW_EVERY_MS = 1000;
const SWEEP_EVERY_SLOW = 10;

export interface ChoreParts {
  registry: Pick<Registry, "tick" | "silentSessions" | "healthPolicy">;
  door: Pick<FrontDoor, "observeLag" | "pump">;
  pace: Pick<PaceController, "repace">;
  sessions: SessionTable;
  rate: Pick<SessionRate, "expire">;
  /** Certificate renewals of enrolled workers (src/enroll/renewal.ts), when the manager has the CA key. */
  renewals?: { tick(): void } | null;
}

/**
 * What the manager does on its own clock. Every tick (100 ms): the registry's due deadlines, and the handshake gate.
 * Every second: the pace, and the certificate renewals that came due. Every ten seconds: sockets silent for ten times the unhealthy bound (half-open or wedged)
 * are closed, and refilled session-rate buckets are dropped; ten seconds late for such a socket matters less than a
 * walk over the whole fleet every second.
 */
export class Chores {
  private timer: NodeJS.Timeout | null = null;
  private lastSlowAt: number;
  private slowRuns = 0;

  constructor(
    private readonly parts: ChoreParts,
    now = performance.now(),
  ) {
    this.lastSlowAt = now;
  }

  start(): void {
    this.timer = setInterval(() => this.run(performance.now()), TICK_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One tick at `tickAt` (performance.now() time). */
  run(tickAt: number): void {
    const { registry, door, pace, sessions, rate } = this.parts;
    door.observeLag(tickAt, TICK_MS);
    registry.tick();
    door.pump(tickAt);
    if (tickAt - this.lastSlowAt < SLOW_EVERY_MS) return;
    this.lastSlowAt = tickAt;
    pace.repace(sessions.connected, (ms) => {
      for (const s of sessions) s.pace(ms);
    });
    this.parts.renewals?.tick();
    if (++this.slowRuns % SWEEP_EVERY_SLOW !== 0) return;
    for (const { id, sessionId } of registry.silentSessions(10 * missedBoundMs(registry.healthPolicy))) {
      const session = sessions.current(id);
      if (session?.sessionId === sessionId) session.close(CloseCode.HEARTBEAT_TIMEOUT);
    }
    rate.expire();
  }
}
