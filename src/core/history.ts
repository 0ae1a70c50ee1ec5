/** A fixed-capacity ring: the newest `capacity` items, oldest first. Memory stays bounded however long it runs. */
export class History<T> {
  private readonly items: T[] = [];
  private start = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("capacity must be a positive integer");
  }

  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
    } else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  get size(): number {
    return this.items.length;
  }

  /** The `i`-th item, 0 being the oldest. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.items.length) return undefined;
    return this.items[(this.start + i) % this.items.length];
  }

  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }
}

/** What the fleet history orders and filters by: a fleet-wide sequence number and a wall-clock time. */
export interface Stamped {
  seq: number;
  at: number;
}

export interface HistoryLimits {
  /** The fleet-wide ring of the newest items, whoever they are about. */
  recent: number;
  /** Each owner keeps at most this many of its own items. */
  perOwner: number;
  /** Items in all owners' rings together; past it, an owner already holding `floor` items replaces its oldest. */
  total: number;
  floor: number;
}

export interface HistoryQuery {
  /** Only items newer than this sequence number. */
  afterSeq?: number;
  /** Only items older than this sequence number: the cursor for the next page back. */
  beforeSeq?: number;
  /** Only items at or after this wall time. Times follow the sequence, so the walk back stops at the first older one. */
  since?: number;
  limit: number;
}

export interface HistoryPage<T> {
  /** Newest last. */
  items: T[];
  /** Whether older items match the query too (ask again with `beforeSeq` = the first item's seq). */
  hasMore: boolean;
}

/**
 * Items kept per owner (a worker), so one owner's flood only ever pushes out its own items, with a fleet-wide view
 * that merges them by sequence number. The rings themselves live with their owners (the caller stores what `push`
 * returns), which costs a worker one array rather than a map entry and an array. A fleet-wide ring of the newest
 * items answers the usual question ("what happened lately") without touching the owners' rings; older pages are a
 * merge from the tail of every ring, proportional to the owners plus the page rather than to all items held.
 */
export class FleetHistory<T extends Stamped> {
  private readonly recent: History<T>;
  private held = 0;

  constructor(private readonly limits: HistoryLimits) {
    this.recent = new History(limits.recent);
  }

  /** Items in owners' rings, all owners together. */
  get total(): number {
    return this.held;
  }

  /** Adds `item` to its owner's ring (created on first use: store the returned ring) and to the fleet's. */
  push(ring: T[] | null, item: T): T[] {
    this.recent.push(item);
    if (ring === null) {
      this.held++;
      return [item];
    }
    const { perOwner, total, floor } = this.limits;
    if (ring.length >= perOwner || (this.held >= total && ring.length >= floor)) ring.shift();
    else this.held++;
    ring.push(item);
    return ring;
  }

  /** An item about no owner any more (a worker forgotten): the fleet's ring only. */
  pushOrphan(item: T): void {
    this.recent.push(item);
  }

  /** The owner is gone: its ring no longer counts. */
  drop(ring: T[] | null): void {
    if (ring) this.held -= ring.length;
  }

  /** One owner's items, or, for an owner without a ring (gone), what the fleet's ring still says about it. */
  ownerPage(ring: readonly T[] | null, q: HistoryQuery, orphanOf?: (item: T) => boolean): HistoryPage<T> {
    if (ring) return collect(walkRing(ring, q.beforeSeq ?? Infinity), q);
    const recent = this.recent;
    const keep = orphanOf ?? (() => false);
    function* orphans(): Generator<T> {
      for (const item of walkRecent(recent, q.beforeSeq ?? Infinity)) if (keep(item)) yield item;
    }
    return collect(orphans(), q);
  }

  /** The fleet-wide view: the fleet's ring, then, older than anything it holds, the owners' rings merged. */
  fleetPage(rings: () => Iterable<readonly T[] | null>, q: HistoryQuery): HistoryPage<T> {
    const recent = this.recent;
    function* all(): Generator<T> {
      const before = q.beforeSeq ?? Infinity;
      yield* walkRecent(recent, before);
      const oldest = recent.at(0);
      yield* mergeFromTail(rings(), Math.min(before, oldest ? oldest.seq : Infinity));
    }
    return collect(all(), q);
  }

  /** Everything held, oldest first, each item once: what the state file keeps. */
  everything(rings: Iterable<readonly T[] | null>): T[] {
    const out: T[] = [];
    for (const ring of rings) if (ring) for (const item of ring) out.push(item);
    for (let i = 0; i < this.recent.size; i++) out.push(this.recent.at(i)!);
    out.sort((a, b) => a.seq - b.seq);
    let n = 0;
    for (const item of out) if (n === 0 || out[n - 1]!.seq !== item.seq) out[n++] = item;
    out.length = n;
    return out;
  }
}

/** Walks a source newest first and keeps the newest `limit` that match, plus whether one more matched. */
function collect<T extends Stamped>(source: Iterable<T>, q: HistoryQuery): HistoryPage<T> {
  const items: T[] = [];
  let hasMore = false;
  for (const item of source) {
    if (q.afterSeq !== undefined && item.seq <= q.afterSeq) break;
    if (q.since !== undefined && item.at < q.since) break;
    if (items.length === q.limit) {
      hasMore = true;
      break;
    }
    items.push(item);
  }
  return { items: items.reverse(), hasMore };
}

function* walkRing<T extends Stamped>(ring: readonly T[], before: number): Generator<T> {
  for (let i = ring.length - 1; i >= 0; i--) if (ring[i]!.seq < before) yield ring[i]!;
}

function* walkRecent<T extends Stamped>(recent: History<T>, before: number): Generator<T> {
  for (let i = recent.size - 1; i >= 0; i--) {
    const item = recent.at(i)!;
    if (item.seq < before) yield item;
  }
}

/** The index of the newest item of a ring older than `before`, or -1 (rings are in sequence order). */
function lastBefore<T extends Stamped>(ring: readonly T[], before: number): number {
  let lo = 0;
  let hi = ring.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ring[mid]!.seq < before) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/**
 * All rings' items older than `before`, newest first: a k-way merge with a max-heap of one cursor per ring, so a
 * page costs a binary search per ring and a heap step per item, and allocates two arrays of cursors.
 */
function* mergeFromTail<T extends Stamped>(rings: Iterable<readonly T[] | null>, before: number): Generator<T> {
  const heap = new TailHeap<T>();
  for (const ring of rings) {
    if (!ring) continue;
    const pos = lastBefore(ring, before);
    if (pos >= 0) heap.add(ring, pos);
  }
  heap.build();
  while (heap.size > 0) yield heap.popNewest();
}

/** A max-heap by sequence number of cursors (a ring and a position in it), kept in two parallel arrays. */
class TailHeap<T extends Stamped> {
  private readonly rings: Array<readonly T[]> = [];
  private readonly pos: number[] = [];
  private readonly seqs: number[] = [];

  get size(): number {
    return this.pos.length;
  }

  add(ring: readonly T[], pos: number): void {
    this.rings.push(ring);
    this.pos.push(pos);
    this.seqs.push(ring[pos]!.seq);
  }

  build(): void {
    for (let k = (this.size >> 1) - 1; k >= 0; k--) this.down(k);
  }

  /** The newest item of all cursors; that cursor moves one back, or leaves when its ring is used up. */
  popNewest(): T {
    const ring = this.rings[0]!;
    const p = this.pos[0]!;
    const item = ring[p]!;
    if (p > 0) {
      this.pos[0] = p - 1;
      this.seqs[0] = ring[p - 1]!.seq;
    } else {
      const last = this.size - 1;
      this.move(last, 0);
      this.rings.pop();
      this.pos.pop();
      this.seqs.pop();
    }
    if (this.size > 0) this.down(0);
    return item;
  }

  private move(from: number, to: number): void {
    this.rings[to] = this.rings[from]!;
    this.pos[to] = this.pos[from]!;
    this.seqs[to] = this.seqs[from]!;
  }

  private down(k: number): void {
    const n = this.size;
    const ring = this.rings[k]!;
    const pos = this.pos[k]!;
    const seq = this.seqs[k]!;
    for (;;) {
      const l = 2 * k + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.seqs[r]! > this.seqs[l]! ? r : l;
      if (this.seqs[child]! <= seq) break;
      this.move(child, k);
      k = child;
    }
    this.rings[k] = ring;
    this.pos[k] = pos;
    this.seqs[k] = seq;
  }
}
