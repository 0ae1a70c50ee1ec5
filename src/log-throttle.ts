import type { Logger } from "./log.js";

/**
 * Caps how often one kind of warning is written: a peer that opens thousands of bad connections must not turn the
 * log into its megaphone, nor fill the disk. The first `perWindow` lines of a kind in each window are written; the
 * rest are counted and reported in one line when the window ends.
 */
export class LogThrottle {
  private readonly windows = new Map<string, { count: number; suppressed: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly perWindow = 20,
    windowMs = 10_000,
  ) {
    this.timer = setInterval(() => this.flush(), windowMs);
    this.timer.unref();
  }

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    let w = this.windows.get(kind);
    if (!w) this.windows.set(kind, (w = { count: 0, suppressed: 0 }));
    if (w.count < this.perWindow) {
      w.count++;
      this.log.warn(fields, msg);
    } else {
      w.suppressed++;
    }
  }

  flush(): void {
    for (const [kind, w] of this.windows) {
      if (w.suppressed > 0) this.log.warn({ kind, suppressed: w.suppressed }, "suppressed similar warnings");
    }
    this.windows.clear();
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
