import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { catalogHash, definitionHash, MAX_CATALOG_ENTRIES, type CatalogEntry } from "../protocol/actions.js";
import type { OfferedEntry } from "./plan.js";
import type { WorkerLink } from "./runner.js";

const PAGE_TIMEOUT_MS = 10_000;

/** One catalogue as the manager fetched it, shared by every worker that offers exactly it. */
export interface Catalogue {
  hash: string;
  entries: readonly CatalogEntry[];
  byName: ReadonlyMap<string, OfferedEntry>;
}

/**
 * The fleet's catalogues, by the hash the MANAGER computed over the entries it fetched: a worker cannot pass its
 * catalogue off as another's. Per worker only two short strings are kept (the hash it last named, and the hash of
 * the catalogue it is known to offer), so 10,000 workers naming one catalogue cost one fetch and one copy.
 *
 * A worker naming a hash the manager holds is taken at its word without a fetch (its host still refuses what it
 * does not define). An unknown hash is fetched once, from one of the workers naming it (single flight); if the
 * fetched catalogue hashes differently, that worker gets what it sent, and the others naming the hash are asked
 * in turn. A failed fetch is tried again when a worker names the hash next (its next heartbeat).
 */
export class CatalogueCache {
  private readonly named = new Map<string, string>();
  private readonly offers = new Map<string, string>();
  private readonly catalogues = new Map<string, Catalogue & { users: number }>();
  /** Per hash being fetched: the workers waiting for it. */
  private readonly waiting = new Map<string, Set<string>>();
  private fetches = 0;

  constructor(
    private readonly link: WorkerLink,
    private readonly log: Logger,
  ) {}

  /** Catalogues fetched so far (for tests and the bench). */
  get fetchCount(): number {
    return this.fetches;
  }

  /** The worker named `hash` (in hello or a heartbeat). */
  noteNamed(workerId: string, hash: string): void {
    // Every heartbeat names the hash: one it has named before is settled (held, being fetched, or mismatched).
    if (this.named.get(workerId) === hash) return;
    const held = this.catalogues.get(hash);
    if (held) {
      this.named.set(workerId, held.hash);
      this.assign(workerId, held.hash);
      return;
    }
    this.named.set(workerId, hash);
    let waiters = this.waiting.get(hash);
    if (waiters) {
      waiters.add(workerId);
      return;
    }
    waiters = new Set([workerId]);
    this.waiting.set(hash, waiters);
    void this.fetchFor(hash, waiters);
  }

  /** The catalogue a worker is known to offer (its last, even while it is not connected). */
  of(workerId: string): Catalogue | undefined {
    const hash = this.offers.get(workerId);
    return hash === undefined ? undefined : this.catalogues.get(hash);
  }

  offered(workerId: string, action: string): OfferedEntry | undefined {
    return this.of(workerId)?.byName.get(action);
  }

  /** The worker left the registry: its catalogue is released. */
  forget(workerId: string): void {
    this.named.delete(workerId);
    this.assign(workerId, undefined);
  }

  private async fetchFor(hash: string, waiters: Set<string>): Promise<void> {
    try {
      // Bounded: each failure or mismatch takes a worker out of the set.
      while (waiters.size > 0) {
        const workerId = waiters.values().next().value!;
        waiters.delete(workerId);
        // A worker that named another hash meanwhile is not asked for this one.
        if (this.named.get(workerId) !== hash) continue;
        let entries: CatalogEntry[];
        try {
          entries = await this.fetch(workerId);
        } catch (err) {
          // Named again at the next heartbeat, it is asked again (see noteNamed); the others too.
          this.log.warn({ worker: workerId, catalog: hash, err: errorMessage(err) }, "could not read the worker's catalogue; trying again at its next heartbeat");
          this.forgetNamed(waiters, hash);
          this.forgetNamed(new Set([workerId]), hash);
          return;
        }
        const computed = this.store(entries);
        this.assign(workerId, computed);
        if (computed === hash) {
          for (const w of waiters) if (this.named.get(w) === hash) this.assign(w, computed);
          return;
        }
        this.log.warn({ worker: workerId, named: hash, computed }, "worker's catalogue does not match the hash it named; kept under its own hash");
      }
    } finally {
      this.waiting.delete(hash);
    }
  }

  /** Those still naming `hash` are asked again the next time they name it. */
  private forgetNamed(workers: Set<string>, hash: string): void {
    for (const w of workers) if (this.named.get(w) === hash) this.named.delete(w);
  }

  private async fetch(workerId: string): Promise<CatalogEntry[]> {
    this.fetches++;
    const entries: CatalogEntry[] = [];
    let cursor: number | undefined;
    for (let page = 0; page <= MAX_CATALOG_ENTRIES; page++) {
      const answer = await this.link.request(workerId, "actions.list", cursor === undefined ? {} : { cursor }, { timeoutMs: PAGE_TIMEOUT_MS });
      entries.push(...answer.entries);
      if (entries.length > MAX_CATALOG_ENTRIES) throw new Error(`catalogue over ${MAX_CATALOG_ENTRIES} entries`);
      if (answer.next === null) return entries;
      if (cursor !== undefined && answer.next <= cursor) throw new Error("catalogue pages do not advance");
      cursor = answer.next;
    }
    throw new Error("catalogue pages do not end");
  }

  private store(entries: CatalogEntry[]): string {
    const hash = catalogHash(entries);
    if (!this.catalogues.has(hash)) {
      const byName = new Map<string, OfferedEntry>();
      // A name listed twice keeps its first definition, as the host's own catalogue does.
      for (const entry of entries) if (!byName.has(entry.name)) byName.set(entry.name, { entry, definitionHash: definitionHash(entry) });
      this.catalogues.set(hash, { hash, entries, byName, users: 0 });
    }
    return hash;
  }

  private assign(workerId: string, hash: string | undefined): void {
    const was = this.offers.get(workerId);
    if (was === hash) return;
    if (was !== undefined) {
      const old = this.catalogues.get(was);
      if (old && --old.users <= 0) this.catalogues.delete(was);
    }
    if (hash === undefined) {
      this.offers.delete(workerId);
      return;
    }
    const held = this.catalogues.get(hash)!;
    held.users++;
    // The catalogue's own string: 10,000 workers share one copy of the hash.
    this.offers.set(workerId, held.hash);
  }
}
