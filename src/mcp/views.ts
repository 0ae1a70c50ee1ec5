import { parseDuration } from "../config/duration.js";
import type { HealthState } from "../core/health.js";
import type { HealthEvent, WorkerView } from "../core/registry.js";
import { MAX_PEERS_PER_ROLE, type Peer } from "../discovery/browser.js";
import type { Counts, EventOut, UnverifiedEntry, WorkerEntry } from "./schemas.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function workerEntry(v: WorkerView): WorkerEntry {
  return {
    id: v.id,
    hostname: v.hostname,
    state: v.state,
    reasons: v.reasons.map((r) => ({ code: r.code, message: r.message })),
    connected: v.connected,
    lastHeartbeatAgeMs: v.lastHeartbeatAgeMs,
    connectedSince: iso(v.connectedSince),
    firstSeen: iso(v.firstSeen)!,
    lastSeen: iso(v.lastSeen)!,
    agentVersion: v.agentVersion,
    labels: { ...v.labels },
    addresses: v.address ? [v.address] : [],
  };
}

export function eventOut(e: HealthEvent): EventOut {
  return {
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    worker: e.worker,
    from: e.from,
    to: e.to,
    reasons: e.reasons.map((r) => ({ code: r.code, message: r.message })),
  };
}

export function countStates(views: WorkerView[]): Counts {
  const counts: Counts = { healthy: 0, degraded: 0, unhealthy: 0, offline: 0, total: views.length };
  for (const v of views) counts[v.state]++;
  return counts;
}

/** `role=db` matches that value; `role` matches any worker that has the label. */
export function matchesLabel(v: WorkerView, label: string | undefined): boolean {
  if (!label) return true;
  const eq = label.indexOf("=");
  if (eq < 0) return Object.hasOwn(v.labels, label);
  return v.labels[label.slice(0, eq)] === label.slice(eq + 1);
}

export function filterWorkers(views: WorkerView[], f: { state?: HealthState; label?: string }): WorkerView[] {
  return views.filter((v) => (!f.state || v.state === f.state) && matchesLabel(v, f.label));
}

// Problems first: what needs attention leads the list; offline is expected, so it comes last.
const RANK: Record<HealthState, number> = { unhealthy: 0, degraded: 1, healthy: 2, offline: 3 };

const sortKey = (v: WorkerView) => `${RANK[v.state]}:${v.id}`;

export function problemsFirst(views: WorkerView[]): WorkerView[] {
  return [...views].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0));
}

/**
 * One page of `views` in problem-first order. The cursor names the last entry returned, not an offset, so a
 * worker that joins between two calls does not shift the next page onto entries already seen.
 */
export function page(
  views: WorkerView[],
  limit: number,
  cursor: string | undefined,
): { items: WorkerView[]; nextCursor: string | null } | { error: string } {
  const sorted = problemsFirst(views);
  let start = 0;
  if (cursor !== undefined) {
    const after = decodeCursor(cursor);
    if (after === null) return { error: `cursor "${cursor}" is not one this server issued; omit it to start from the first page` };
    start = sorted.findIndex((v) => sortKey(v) > after);
    if (start < 0) start = sorted.length;
  }
  const items = sorted.slice(start, start + limit);
  const more = start + limit < sorted.length;
  return { items, nextCursor: more && items.length > 0 ? encodeCursor(sortKey(items.at(-1)!)) : null };
}

function encodeCursor(key: string): string {
  return Buffer.from(`v1:${key}`).toString("base64url");
}

function decodeCursor(cursor: string): string | null {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  return /^v1:[0-3]:[a-z0-9-]+$/.test(text) ? text.slice(3) : null;
}

/** The highest of CPU, memory and fullest-disk use: the resource closest to running out. */
export function pressureScore(v: WorkerView): number | null {
  const m = v.metrics;
  if (!m) return null;
  const values = [m.cpu, m.mem, m.disk?.used ?? null].filter((x): x is number => x !== null);
  return values.length === 0 ? null : Math.max(...values);
}

/** `since` is an ISO time, or a duration back from now ("15m", "2h"). Returns epoch ms, or an error text. */
export function parseSince(since: string, now: number): number | string {
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(since.trim())) return now - parseDuration(since);
  const t = Date.parse(since);
  return Number.isNaN(t) ? `since "${since}" is neither an ISO time (2026-01-31T12:00:00Z) nor a duration (15m, 2h)` : t;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Known ids that look like `query`: close in edit distance, or containing it, nearest first. */
export function closestIds(query: string, ids: string[], n = 3): string[] {
  const q = query.toLowerCase();
  return ids
    .map((id) => ({ id, d: id.includes(q) || q.includes(id) ? 0.5 : distance(q, id) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(q.length / 3)))
    .sort((a, b) => a.d - b.d || a.id.localeCompare(b.id))
    .slice(0, n)
    .map((x) => x.id);
}

export function unknownWorkerMessage(query: string, ids: string[]): string {
  const near = closestIds(query, ids);
  if (ids.length === 0) return `Unknown worker_id "${query}": no workers are known yet.`;
  return near.length > 0
    ? `Unknown worker_id "${query}". Closest known ids: ${near.join(", ")}.`
    : `Unknown worker_id "${query}". Known ids: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? `, and ${ids.length - 10} more (see list_workers)` : ""}.`;
}

/**
 * Workers that announce themselves on mDNS but hold no session: the likely reasons are a refused certificate or
 * another fleet. Announcements are claims anyone can make, so they are listed apart and never touch the registry.
 * What is shown of one was checked before the browser kept it (an id, an RFC 1123 host name, IP addresses), and
 * the list is bounded like the browser's (the most recently heard kept).
 */
export function unverifiedAnnouncements(
  peers: Peer[],
  isConnected: (id: string) => boolean,
  fleetId: string,
  now: number,
): UnverifiedEntry[] {
  return [...peers]
    .sort((a, b) => b.lastSeen - a.lastSeen)
    .filter((p) => p.announcement.id && !(p.announcement.fleet === fleetId && isConnected(p.announcement.id)))
    .slice(0, MAX_PEERS_PER_ROLE)
    .map((p) => {
      const ours = p.announcement.fleet === fleetId;
      return {
        id: p.announcement.id!,
        hostname: p.host.replace(/\.local\.?$/, ""),
        addresses: p.addresses,
        fleet: ours ? ("this" as const) : ("other" as const),
        lastHeardAgeMs: Math.round(now - p.lastSeen),
        hint: ours
          ? "announcing but not connected: check its certificate (revoked, expired, not yet valid?) and its log"
          : "announcing another fleet (its CA is not this manager's): it cannot join this fleet",
      };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}
