import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import type { Labels } from "../protocol/messages.js";
import type { ApprovalMode } from "./api.js";

/*
 * Join tokens, without I/O: the clock is passed in. A token is `id.secret`; the id is public (lists, logs), the
 * secret is shown once when the token is made and kept only as its SHA-256, so a copy of the join file lets
 * nobody join.
 */

export interface TokenRecord {
  id: string;
  /** SHA-256 of the secret, lower-case hex. */
  secretHash: string;
  createdAt: string;
  expiresAt: string;
  /** How many hosts may join with it. */
  uses: number;
  /** How many have (an approve=manual token counts a use when its request is approved). */
  used: number;
  /** Put into the certificate of every host that joins with it. */
  labels: Labels;
  approve: ApprovalMode;
  /** A host joining with it may take an id another key holds; that key's certificates are then revoked. */
  replace: boolean;
  revokedAt: string | null;
}

export type TokenStatus = "active" | "expired" | "exhausted" | "revoked";

export type TokenRefusal = "unknown_token" | "wrong_secret" | "revoked_token" | "expired_token" | "exhausted_token";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `length` characters of a-z 0-9, each from the CSPRNG without bias (randomInt rejects out-of-range draws). */
export function randomText(length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

export const TOKEN_ID_LENGTH = 6;
// 24 of 36 symbols: 124 bits, beyond any guessing through a rate-limited endpoint.
export const TOKEN_SECRET_LENGTH = 24;
export const REQUEST_ID_LENGTH = 8;

/** A join request's id: 8 of a-z 0-9, what an operator types to approve or deny it. */
export function newRequestId(): string {
  return randomText(REQUEST_ID_LENGTH);
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

export function newToken(o: { ttlMs: number; uses: number; labels: Labels; approve: ApprovalMode; replace: boolean; now: Date }): {
  record: TokenRecord;
  secret: string;
} {
  const secret = randomText(TOKEN_SECRET_LENGTH);
  const record: TokenRecord = {
    id: randomText(TOKEN_ID_LENGTH),
    secretHash: hashSecret(secret),
    createdAt: o.now.toISOString(),
    expiresAt: new Date(o.now.getTime() + o.ttlMs).toISOString(),
    uses: o.uses,
    used: 0,
    labels: { ...o.labels },
    approve: o.approve,
    replace: o.replace,
    revokedAt: null,
  };
  return { record, secret };
}

/** Compares digests of equal length in constant time; a stored hash that is not 32 bytes of hex matches nothing. */
function sameHash(storedHex: string, presentedHex: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(storedHex)) return false;
  return timingSafeEqual(Buffer.from(storedHex, "hex"), Buffer.from(presentedHex, "hex"));
}

/**
 * Checks a presented token. The secret is checked before anything else about the token is told, so a guesser of
 * ids learns only that an id exists, never whether it is revoked, expired or used up.
 */
export function checkToken(
  records: readonly TokenRecord[],
  presented: { id: string; secret: string },
  now: Date,
): { ok: true; record: TokenRecord } | { ok: false; code: TokenRefusal } {
  const record = records.find((r) => r.id === presented.id);
  if (!record) return { ok: false, code: "unknown_token" };
  if (!sameHash(record.secretHash, hashSecret(presented.secret))) return { ok: false, code: "wrong_secret" };
  const status = tokenStatus(record, now);
  if (status !== "active") return { ok: false, code: `${status}_token` };
  return { ok: true, record };
}

/** Revoked wins over expired, expired over exhausted: the order checkToken refuses in. */
export function tokenStatus(r: TokenRecord, now: Date): TokenStatus {
  if (r.revokedAt !== null) return "revoked";
  if (now.getTime() >= Date.parse(r.expiresAt)) return "expired";
  if (r.used >= r.uses) return "exhausted";
  return "active";
}
