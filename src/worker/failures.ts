import { closeCodeName, describeCloseCode } from "../protocol/close-codes.js";
import { NOT_A_MANAGER } from "../tls/contexts.js";

/** Why a connection attempt failed, in the terms an operator acts on. */
export type FailureKind = "unreachable" | "certificate_refused" | "manager_rejected" | "http_refused" | "closed" | "protocol";

export interface Failure {
  kind: FailureKind;
  message: string;
}

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

const MANAGER_CERT_REJECTED = new Set([
  NOT_A_MANAGER,
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Classifies a failed attempt. `tlsDone` matters: with TLS 1.3 the client finishes its side of the handshake
 * before the server has checked the client certificate, so a refusal arrives as an alert or a bare reset
 * afterwards, not as a handshake error.
 */
export function classifyError(err: Error & { code?: string }, tlsDone: boolean): Failure {
  const code = err.code ?? "";
  if (MANAGER_CERT_REJECTED.has(code)) {
    return { kind: "manager_rejected", message: `the manager's certificate was rejected: ${err.message} (${code})` };
  }
  if (/ALERT/.test(code) || /alert/i.test(err.message)) {
    return { kind: "certificate_refused", message: `the manager refused this worker's certificate: ${err.message}` };
  }
  if (tlsDone && (code === "ECONNRESET" || code === "EPIPE" || /socket hang up/.test(err.message))) {
    return {
      kind: "certificate_refused",
      message: `the manager closed the connection right after the TLS handshake; it most likely refused this worker's certificate (${code || err.message})`,
    };
  }
  if (UNREACHABLE.has(code) || code === "ECONNRESET" || /socket hang up|timed out/i.test(err.message)) {
    return { kind: "unreachable", message: `manager unreachable: ${err.message}` };
  }
  return { kind: "protocol", message: err.message };
}

export function classifyHttpStatus(status: number): Failure {
  return { kind: "http_refused", message: `the manager answered HTTP ${status} instead of upgrading; is that URL a manager's worker endpoint?` };
}

export function describeClose(code: number, reason: string): Failure {
  const name = closeCodeName(code);
  return {
    kind: "closed",
    message: `session closed: ${reason || describeCloseCode(code)} (${code}${name ? ` ${name}` : ""})`,
  };
}
