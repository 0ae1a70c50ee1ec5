/**
 * Full-jitter exponential backoff (the AWS architecture blog's "full jitter"): the n-th delay is uniform in
 * [0, min(cap, base·2ⁿ)]. Spreads a whole fleet's reconnects after a manager restart instead of synchronising them.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs = 500,
    private readonly capMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {}

  /** The ceiling of the next delay, before jitter. */
  get ceilingMs(): number {
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
  }

  /** The next delay; `capMs` lowers the ceiling for this one delay only (the ceiling itself still grows). */
  next(capMs = this.capMs): number {
    const delay = this.random() * Math.min(capMs, this.ceilingMs);
    if (this.ceilingMs < this.capMs) this.attempt++;
    return Math.round(delay);
  }

  reset(): void {
    this.attempt = 0;
  }

  /** After a refusal that will repeat (revoked, wrong identity), wait as long as allowed from now on. */
  toCap(): void {
    while (this.ceilingMs < this.capMs) this.attempt++;
  }
}
