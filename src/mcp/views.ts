import { parseDuration } from "../config/duration.js";
import type { HealthState, Reason } from "../core/health.js";
import type { HealthEvent, WorkerView } from "../core/registry.js";
import { MAX_PEERS_PER_ROLE, type Peer } from "../discovery/browser.js";
import type { Labels } from "../protocol/messages.js";
import { CAPS, clip } from "./answer-budget.js";
import type { Counts, EventOut, StatusEntry, UnverifiedEntry, WorkerDetail, WorkerRow } from "./schemas.js";
import { capMetrics } from "./status-view.js";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const reasonOut = (r: Reason) => ({ code: r.code, message: clip(r.message, CAPS.reasonMessage) });

/**
 * Labels sorted by key, each value capped, at most `max` of them; `more` counts the rest. Keys are kept whole (the
 * wire bounds them): two long keys cut to one length could become the same key, and one label would hide another.
 */
function cappedLabels(labels: Labels, max: number): { labels: Record<string, string>; more: number } {
  const keys = Object.keys(labels).sort();
  const out: Record<string, string> = {};
  for (const k of keys.slice(0, max)) out[k] = clip(labels[k]!, CAPS.labelText);
  return { labels: out, more: Math.max(0, keys.length - max) };
}

/** list_workers' compact row: state, reason codes, heartbeat age and labels; everything else is in the detail. */
export function workerRow(v: WorkerView): WorkerRow {
  const { labels, more } = cappedLabels(v.labels, CAPS.rowLabels);
  return {
    id: v.id,
    state: v.state,
    reasons: v.reasons.map((r) => r.code),
    connected: v.connected,
    lastHeartbeatAgeMs: v.lastHeartbeatAgeMs,
    labels,
    ...(more > 0 ? { moreLabels: more } : {}),
  };
}

/** One worker in full: what the manager observed, and apart from it what the worker reported of itself. */
export function workerDetail(v: WorkerView): WorkerDetail {
  return {
    id: v.id,
    state: v.state,
    reasons: v.reasons.map(reasonOut),
    connected: v.connected,
    lastHeartbeatAgeMs: v.lastHeartbeatAgeMs,
    connectedSince: iso(v.connectedSince),
    firstSeen: iso(v.firstSeen)!,
    lastSeen: iso(v.lastSeen)!,
    addresses: v.address ? [v.address] : [],
    reported: {
      hostname: clip(v.hostname, CAPS.hostname),
      agentVersion: clip(v.agentVersion, CAPS.text),
      labels: cappedLabels(v.labels, 64).labels,
      platform: { os: clip(v.platform.os, CAPS.text), arch: clip(v.platform.arch, CAPS.text), release: clip(v.platform.release, CAPS.text) },
    },
  };
}

/** get_all_workers_status's entry before any worker is asked: the last heartbeat's summary. */
export function statusEntry(v: WorkerView): StatusEntry {
  return {
    id: v.id,
    hostname: clip(v.hostname, CAPS.hostname),
    state: v.state,
    reasons: v.reasons.map(reasonOut),
    connected: v.connected,
    lastHeartbeatAgeMs: v.lastHeartbeatAgeMs,
    metrics: capMetrics(v.metrics),
    status: null,
    error: null,
  };
}

export function eventOut(e: HealthEvent): EventOut {
  return {
    seq: e.seq,
    at: new Date(e.at).toISOString(),
    worker: e.worker,
    from: e.from,
    to: e.to,
    reasons: e.reasons.map(reasonOut),
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

/** Where an entry sits in problem-first order: its state's rank, then its id. */
interface SortKey {
  rank: number;
  id: string;
}

const keyOf = (v: WorkerView): SortKey => ({ rank: RANK[v.state], id: v.id });
const compareKeys = (a: SortKey, b: SortKey) => a.rank - b.rank || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export function problemsFirst(views: WorkerView[]): WorkerView[] {
  // Keyed once: at 10,000 workers a key built in every comparison was most of a list_workers call.
  const keyed = views.map((v) => ({ key: keyOf(v), v }));
  keyed.sort((a, b) => compareKeys(a.key, b.key));
  return keyed.map((k) => k.v);
}

/**
 * One page of `views` in problem-first order, and whether more follow it. The cursor names the last entry
 * returned, not an offset, so a worker that joins between two calls does not shift the next page onto entries
 * already seen. A caller that returns fewer than the page (to stay within the answer budget) makes its cursor
 * with `cursorAfter` from the last entry it kept.
 */
export function page(
  views: WorkerView[],
  limit: number,
  cursor: string | undefined,
): { items: WorkerView[]; more: boolean } | { error: string } {
  const sorted = problemsFirst(views);
  let start = 0;
  if (cursor !== undefined) {
    const after = decodeCursor(cursor);
    if (after === null) return { error: `cursor "${cursor}" is not one this server issued; omit it to start from the first page` };
    start = sorted.findIndex((v) => compareKeys(keyOf(v), after) > 0);
    if (start < 0) start = sorted.length;
  }
  return { items: sorted.slice(start, start + limit), more: start + limit < sorted.length };
}

/** The cursor of the page that follows `v`. */
export function cursorAfter(v: WorkerView): string {
  return Buffer.from(`v1:${RANK[v.state]}:${v.id}`).toString("base64url");
}

function decodeCursor(cursor: string): SortKey | null {
  const m = /^v1:([0-3]):([a-z0-9-]{1,63})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  return m ? { rank: Number(m[1]), id: m[2]! } : null;
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

/**
 * The unverified announcements list_workers shows: this fleet's first (a refused certificate is what an operator
 * looks for), then the most recently heard, at most CAPS.unverified, each with its announcer's strings capped.
 */
export function shownUnverified(entries: UnverifiedEntry[]): { unverified: UnverifiedEntry[]; unverifiedTotal: number } {
  const ordered = [...entries].sort((a, b) => (a.fleet === b.fleet ? a.lastHeardAgeMs - b.lastHeardAgeMs : a.fleet === "this" ? -1 : 1));
  return {
    unverified: ordered.slice(0, CAPS.unverified).map((u) => ({
      ...u,
      id: clip(u.id, CAPS.labelText),
      hostname: clip(u.hostname, CAPS.hostname),
      addresses: u.addresses.slice(0, CAPS.addresses).map((a) => clip(a, 64)),
    })),
    unverifiedTotal: entries.length,
  };
}
