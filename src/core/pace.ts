/**
 * The heartbeat interval for a fleet of `connected` workers: the configured interval, lengthened (in steps) as the
 * fleet grows, so the whole fleet sends at most `budgetPerSecond` heartbeats a second (Nomad does the same).
 * A budget of 0 means no limit.
 */
export function pacedInterval(o: { baseMs: number; budgetPerSecond: number; connected: number; stepMs?: number }): number {
  if (o.budgetPerSecond <= 0) return o.baseMs;
  const needed = (o.connected / o.budgetPerSecond) * 1000;
  if (needed <= o.baseMs) return o.baseMs;
  const step = o.stepMs ?? 500;
  return Math.ceil(needed / step) * step;
}

/**
 * Whether to move from `current` to `desired`. Lengthening is at once (the budget is exceeded otherwise);
 * shortening only once the fleet has shrunk clearly, so a count hovering at a step does not flap the interval.
 */
export function shouldRepace(current: number, desired: number): boolean {
  return desired > current || desired <= current * 0.75;
}
