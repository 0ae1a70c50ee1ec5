/**
 * New sessions per worker id (and join requests per source address), as token buckets: `burst` at once, refilled at `perMinute`. An identity that
 * reconnects in a loop is refused before its `hello`, so it cannot fill the registry's history or the log.
 *
 * Bounded: at most `maxIds` buckets. A bucket that has refilled is the same as none and is dropped by `expire`;
 * when the table is full anyway, the least recently used bucket goes (its identity starts afresh with a full burst,
 * which is all an attacker with that many certificates gains).
 */
export class SessionRate {
  /** Worker id → its bucket; the most recently used last. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly maxIds = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts one new session for `id`; false when it is over its rate (0 a minute: no limit). */
  take(id: string): boolean {
    if (this.perMinute <= 0) return true;
    const t = this.now();
    let bucket = this.buckets.get(id);
    if (bucket) {
      this.buckets.delete(id);
      bucket.tokens = this.refilled(bucket, t);
      bucket.at = t;
    } else {
      if (this.buckets.size >= this.maxIds) this.makeRoom();
      bucket = { tokens: this.burst, at: t };
    }
    this.buckets.set(id, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** How long until `id` has a token again (0: it has one now). */
  retryAfterMs(id: string): number {
    const bucket = this.buckets.get(id);
    if (this.perMinute <= 0 || !bucket) return 0;
    const tokens = this.refilled(bucket, this.now());
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.perMinute) * 60_000);
  }

  /** Drops the buckets that have refilled. Call it now and then; a walk over at most `maxIds` entries. */
  expire(): void {
    const t = this.now();
    for (const [id, bucket] of this.buckets) if (this.refilled(bucket, t) >= this.burst) this.buckets.delete(id);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(bucket: { tokens: number; at: number }, t: number): number {
    return Math.min(this.burst, bucket.tokens + ((t - bucket.at) / 60_000) * this.perMinute);
  }

  private makeRoom(): void {
    this.expire();
    while (this.buckets.size >= this.maxIds) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }
}
