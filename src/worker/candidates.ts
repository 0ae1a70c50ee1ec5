import { isIPv6 } from "node:net";
import type { FleetBrowser, Peer } from "../discovery/browser.js";
import type { Announcement } from "../discovery/txt.js";

/** Which managers' announcements count: those of a fleet id, or (a joining worker, which knows only a pin) a test. */
export type ManagerFilter = string | ((a: Announcement) => boolean);

/**
 * The managers this worker may try, from mDNS: announced as role=manager with this worker's fleet id (or, while it
 * joins, with its CA pin's prefix). Tried most recently heard first, and in turn after a failure, so a worker
 * fails over to another manager of its fleet when its own goes away. Whether one really is this fleet's manager is decided by its certificate, not here.
 */
export class ManagerCandidates {
  private last: string | null = null;
  /** URLs whose certificate failed verification, with when: not tried again while they keep announcing. */
  private readonly rejected = new Map<string, number>();
  private readonly wanted: (a: Announcement) => boolean;

  constructor(
    filter: ManagerFilter,
    private readonly browser: FleetBrowser | null,
    private readonly rejectForMs = 10 * 60_000,
  ) {
    this.wanted = typeof filter === "string" ? (a) => a.fleet === filter : filter;
    // A rejected announcer that goes away and comes back (a manager restarted with a fixed certificate) gets a
    // fresh chance.
    browser?.on("change", () => {
      const live = new Set(this.announced());
      for (const u of this.rejected.keys()) if (!live.has(u)) this.rejected.delete(u);
    });
  }

  /** Set aside a candidate whose certificate is not this fleet's manager's (a rogue or misconfigured announcer). */
  reject(u: string): void {
    this.rejected.set(u, performance.now());
  }

  private announced(): string[] {
    const peers = this.browser?.list((p) => p.announcement.role === "manager" && this.wanted(p.announcement)) ?? [];
    return peers.map(url).filter((u): u is string => u !== null);
  }

  urls(): string[] {
    const now = performance.now();
    return this.announced().filter((u) => {
      const at = this.rejected.get(u);
      return at === undefined || now - at > this.rejectForMs;
    });
  }

  /** The candidate after the one tried last; null when none is known. */
  next(): string | null {
    const urls = this.urls();
    if (urls.length === 0) return null;
    const after = this.last === null ? -1 : urls.indexOf(this.last);
    this.last = urls[(after + 1) % urls.length]!;
    return this.last;
  }
}

function url(p: Peer): string | null {
  // The packet's source address comes first; IPv6 link-local addresses would need a zone, so IPv4 is preferred.
  const address = p.addresses.find((a) => !isIPv6(a)) ?? p.addresses.find((a) => !a.startsWith("fe80"));
  if (!address) return null;
  return `wss://${isIPv6(address) ? `[${address}]` : address}:${p.port}`;
}
