import { FleetError } from "../errors.js";
import type { JoinFile, RequestRecord } from "./token-file.js";
import { tokenStatus, type TokenRecord, type TokenStatus } from "./tokens.js";

/*
 * What `mcp-fleet token` reads from and does to the join file, without I/O: the clock is passed in. The manager
 * acts on a decision written here when it next reads the file.
 */

/** A token as lists show it: everything but the secret's hash. */
export interface TokenView {
  id: string;
  status: TokenStatus;
  used: number;
  uses: number;
  createdAt: string;
  expiresAt: string;
  approve: TokenRecord["approve"];
  labels: TokenRecord["labels"];
  replace: boolean;
  revokedAt: string | null;
}

export function tokenView(r: TokenRecord, now: Date): TokenView {
  return {
    id: r.id,
    status: tokenStatus(r, now),
    used: r.used,
    uses: r.uses,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    approve: r.approve,
    labels: { ...r.labels },
    replace: r.replace,
    revokedAt: r.revokedAt,
  };
}

/** Waiting for an operator: not decided, and not past its expiry (an expired request is gone from the lists). */
export function isPending(r: RequestRecord, now: Date): boolean {
  return r.status === "pending" && now.getTime() < Date.parse(r.expiresAt);
}

/** Pending requests, oldest first. */
export function pendingRequests(f: JoinFile, now: Date): RequestRecord[] {
  return f.requests.filter((r) => isPending(r, now)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

/** Marks a token revoked; a token revoked before keeps its first revocation time. */
export function revokeToken(f: JoinFile, id: string, now: Date, path: string): { record: TokenRecord; already: boolean } {
  const record = f.tokens.find((t) => t.id === id);
  if (!record) throw new FleetError("E_CONFIG", `no join token "${id}" in ${path} (\`mcp-fleet token list\` shows them)`);
  if (record.revokedAt !== null) return { record, already: true };
  record.revokedAt = now.toISOString();
  return { record, already: false };
}

/**
 * Approves or denies a pending request. Only a pending one can be decided: a decided request stays decided, and an
 * expired one is gone (its host asks again and gets a new request).
 */
export function decideRequest(
  f: JoinFile,
  o: { requestId: string; decision: "approved" | "denied"; by: string; now: Date; path: string },
): RequestRecord {
  const r = f.requests.find((x) => x.requestId === o.requestId);
  const list = "`mcp-fleet token requests` lists the pending ones";
  if (!r) throw new FleetError("E_UNKNOWN_REQUEST", `no join request "${o.requestId}" in ${o.path} (${list})`);
  if (r.status !== "pending") {
    throw new FleetError("E_UNKNOWN_REQUEST", `join request "${o.requestId}" was already ${r.status}${r.decidedBy ? ` by ${r.decidedBy}` : ""}${r.decidedAt ? ` at ${r.decidedAt}` : ""}`);
  }
  if (!isPending(r, o.now)) throw new FleetError("E_UNKNOWN_REQUEST", `join request "${o.requestId}" expired at ${r.expiresAt} (${list})`);
  r.status = o.decision;
  r.decidedAt = o.now.toISOString();
  r.decidedBy = o.by;
  return r;
}
