import type { Labels } from "../protocol/messages.js";
import { JOIN_REFUSAL_TEXT, type JoinAnswer, type JoinRefusal } from "../protocol/join.js";
import type { JoinRequestView } from "./api.js";
import { isPending } from "./join-records.js";
import type { JoinFile, RequestRecord } from "./token-file.js";
import type { TokenRecord } from "./tokens.js";

/*
 * What a join request gets, given the join file and the time, without I/O. The enrollment service
 * (service.ts) reads the file, checks the CSR and the inventory, and asks here.
 *
 * A request's life: pending until its expiry (an hour), then expired (the host is told request_expired) until
 * it is forgotten an hour later, when the same key asking again makes a new request. A denied request answers
 * `denied` until its expiry and is then forgotten. An approved one keeps its certificate for an hour after the
 * decision, so a host whose answer was lost gets the same certificate when it asks again.
 */

export const REQUEST_TTL_MS = 3_600_000;
export const FORGET_EXPIRED_AFTER_MS = 3_600_000;
/** A full pending list is not going to empty in seconds: a refused host waits this long. */
export const TOO_MANY_RETRY_MS = 60_000;
/** A pending answer to a host that did not ask to wait (waitMs 0): it asks again after this. */
export const PENDING_RETRY_MS = 5_000;

const ms = (iso: string) => Date.parse(iso);

/** Where a key's request stands. `approved` may not have its certificate yet (decided on the command line). */
export type Standing =
  | { kind: "none" }
  | { kind: "pending" | "approved" | "denied" | "expired"; request: RequestRecord; until: number };

/** The state of one record at `now`, with the time it changes; null once it is to be forgotten. */
export function standingOfRecord(r: RequestRecord, now: Date): Exclude<Standing, { kind: "none" }> | null {
  const t = now.getTime();
  const expires = ms(r.expiresAt);
  switch (r.status) {
    case "pending":
      if (t < expires) return { kind: "pending", request: r, until: expires };
      return t < expires + FORGET_EXPIRED_AFTER_MS ? { kind: "expired", request: r, until: expires + FORGET_EXPIRED_AFTER_MS } : null;
    case "denied":
      return t < expires ? { kind: "denied", request: r, until: expires } : null;
    case "approved": {
      const until = Math.max(expires, (r.decidedAt ? ms(r.decidedAt) : ms(r.createdAt)) + REQUEST_TTL_MS);
      return t < until ? { kind: "approved", request: r, until } : null;
    }
  }
}

/** The newest live request of the key, if any. */
export function standingOf(f: JoinFile, keyFingerprint: string, now: Date): Standing {
  let best: Exclude<Standing, { kind: "none" }> | null = null;
  for (const r of f.requests) {
    if (r.keyFingerprint !== keyFingerprint) continue;
    const s = standingOfRecord(r, now);
    if (s && (!best || r.createdAt > best.request.createdAt)) best = s;
  }
  return best ?? { kind: "none" };
}

/** Records past all use: the service drops them when it next writes the file. */
export function forgettable(f: JoinFile, now: Date): RequestRecord[] {
  return f.requests.filter((r) => standingOfRecord(r, now) === null);
}

export function dropForgotten(f: JoinFile, now: Date): number {
  const before = f.requests.length;
  f.requests = f.requests.filter((r) => standingOfRecord(r, now) !== null);
  return before - f.requests.length;
}

export function pendingCount(f: JoinFile, now: Date): number {
  let n = 0;
  for (const r of f.requests) if (isPending(r, now)) n++;
  return n;
}

/**
 * A new request that passed the token, CSR and id checks: an auto token issues at once; a manual token, or none,
 * queues for an operator, unless `maxPending` are already waiting.
 */
export function placeNew(f: JoinFile, token: TokenRecord | null, now: Date, maxPending: number): "issue" | "queue" | "too_many_pending" {
  if (token?.approve === "auto") return "issue";
  return pendingCount(f, now) >= maxPending ? "too_many_pending" : "queue";
}

export function newRequestRecord(o: {
  requestId: string;
  requestedId: string;
  hostname: string;
  address: string | null;
  keyFingerprint: string;
  csr: string;
  token: TokenRecord | null;
  now: Date;
}): RequestRecord {
  const labels: Labels = o.token ? { ...o.token.labels } : {};
  return {
    requestId: o.requestId,
    requestedId: o.requestedId,
    hostname: o.hostname,
    address: o.address,
    keyFingerprint: o.keyFingerprint,
    csr: o.csr,
    tokenId: o.token?.id ?? null,
    labels,
    createdAt: o.now.toISOString(),
    expiresAt: new Date(o.now.getTime() + REQUEST_TTL_MS).toISOString(),
    status: "pending",
  };
}

export function refusal(code: JoinRefusal, retryAfterMs?: number, message: string = JOIN_REFUSAL_TEXT[code]): JoinAnswer {
  return { status: "refused", code, message, ...(retryAfterMs !== undefined ? { retryAfterMs: Math.max(0, Math.min(86_400_000, Math.round(retryAfterMs))) } : {}) };
}

/**
 * The answer for a key whose request exists. An approved request without its certificate yet has no answer here
 * (null): the service issues it first.
 */
export function answerFor(s: Exclude<Standing, { kind: "none" }>, o: { caPem: string; now: Date; waited: boolean }): JoinAnswer | null {
  const left = s.until - o.now.getTime();
  switch (s.kind) {
    case "pending":
      return { status: "pending", requestId: s.request.requestId, retryAfterMs: o.waited ? 0 : PENDING_RETRY_MS };
    case "denied":
      return refusal("denied", left);
    case "expired":
      return refusal("request_expired", left);
    case "approved": {
      const r = s.request;
      if (!r.certificate || !r.notAfter) return null;
      return { status: "issued", id: r.requestedId, certificate: r.certificate, ca: o.caPem, notAfter: r.notAfter };
    }
  }
}

/** Requests decided between two readings of the file: what the service logs and wakes waiters for. */
export function decisionsBetween(before: JoinFile, after: JoinFile): RequestRecord[] {
  const was = new Map(before.requests.map((r) => [r.requestId, r.status]));
  return after.requests.filter((r) => r.status !== "pending" && was.get(r.requestId) !== r.status);
}

/** Approved requests whose certificate is not issued yet, and still within their time. */
export function awaitingIssue(f: JoinFile, now: Date): RequestRecord[] {
  return f.requests.filter((r) => r.status === "approved" && !r.certificate && standingOfRecord(r, now) !== null);
}

export function requestView(r: RequestRecord, now: Date): JoinRequestView {
  return {
    requestId: r.requestId,
    requestedId: r.requestedId,
    hostname: r.hostname,
    address: r.address,
    keyFingerprint: r.keyFingerprint,
    tokenId: r.tokenId,
    labels: { ...r.labels },
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    ageMs: Math.max(0, now.getTime() - ms(r.createdAt)),
  };
}

/** How a decision is recorded in the file and the log: `mcp:<client>/<version>` or `cli:<user>`. */
export function approverText(by: { via: string; name: string; version?: string; operator?: string }): string {
  return `${by.via}:${by.name}${by.version ? `/${by.version}` : ""}${by.operator ? ` operator ${by.operator}` : ""}`.slice(0, 200);
}
