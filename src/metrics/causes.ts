import { closeCodeName } from "../protocol/close-codes.js";

/**
 * Why the manager turned a connection or a session away, as the `cause` label says it: a fixed set, so a hostile
 * peer cannot grow the label's values. Close codes keep their names (lower case); TLS verdicts, which are
 * OpenSSL's open-ended strings, fall into a few groups.
 */
export const REFUSAL_CAUSES = [
  // Close codes the manager sends (src/protocol/close-codes.ts).
  "protocol_error",
  "unsupported_protocol",
  "identity_mismatch",
  "wrong_role",
  "revoked",
  "replaced",
  "rate_limited",
  "hello_timeout",
  "heartbeat_timeout",
  "too_many_sessions",
  "slow_consumer",
  "too_many_pending",
  // TLS verdicts on the client certificate.
  "tls_expired",
  "tls_revoked",
  "tls_untrusted",
  "tls_no_certificate",
  "tls_other",
  // Before or around TLS.
  "tls_failed",
  "handshake_shed",
  "no_upgrade",
  "join_upgrade",
  "other",
] as const;
export type RefusalCause = (typeof REFUSAL_CAUSES)[number];

const CAUSES: ReadonlySet<string> = new Set(REFUSAL_CAUSES);

/** The cause for a close code the manager sent; codes it does not send as a refusal (1000, 1001, 4011) are null. */
export function closeCause(code: number): RefusalCause | null {
  if (code < 4000 || code > 4999) return null;
  const name = closeCodeName(code)?.toLowerCase();
  if (name === undefined) return "other";
  return CAUSES.has(name) ? (name as RefusalCause) : null;
}

/** The group of an OpenSSL verdict (or the manager's own wording of one) on a client certificate. */
export function tlsCause(reason: string): RefusalCause {
  const r = reason.toUpperCase();
  if (r.includes("REVOKED")) return "tls_revoked";
  if (r.includes("EXPIRED") || r.includes("NOT_YET_VALID")) return "tls_expired";
  if (r.includes("NO CLIENT CERTIFICATE")) return "tls_no_certificate";
  if (r.includes("ISSUER") || r.includes("SELF_SIGNED") || r.includes("VERIFY") || r.includes("SIGNATURE") || r.includes("CHAIN")) return "tls_untrusted";
  return "tls_other";
}
