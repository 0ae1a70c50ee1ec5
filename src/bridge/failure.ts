import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { errorMessage } from "../errors.js";
import { NOT_A_MANAGER } from "../tls/contexts.js";

/**
 * Why a try to reach the manager failed, and whether trying again can help. A manager that is down, restarting or
 * full is worth waiting for; a certificate that does not fit (another CA, not a manager of our fleet, refused by the
 * manager) will not fit next time either, and a bridge that retried it would loop silently where the user needs
 * to fix a setting.
 */
export interface Failure {
  permanent: boolean;
  message: string;
}

/** OpenSSL's and Node's codes for a peer certificate that does not verify: settings, not weather. */
const CERT_CODES = new Set([
  NOT_A_MANAGER,
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_REVOKED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
]);

/** The innermost `code` on an error's cause chain (undici wraps the socket's error in "fetch failed"). */
function codeOf(err: unknown): string | undefined {
  let found: string | undefined;
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") found = code;
  }
  return found;
}

function innermost(err: unknown): unknown {
  let e = err;
  for (let depth = 0; depth < 5 && e && typeof e === "object" && (e as { cause?: unknown }).cause; depth++) e = (e as { cause: unknown }).cause;
  return e;
}

export function classify(err: unknown): Failure {
  if (err instanceof StreamableHTTPError) {
    // 401/403: the manager read our certificate and said no (a worker's, a revoked one, another fleet's).
    const permanent = err.code === 401 || err.code === 403;
    return { permanent, message: `${err.message.replace(/^Streamable HTTP error: /, "")} (HTTP ${err.code})` };
  }
  const code = codeOf(err);
  if (code && CERT_CODES.has(code)) return { permanent: true, message: `TLS: ${errorMessage(innermost(err))} (${code})` };
  return { permanent: false, message: code ? `${errorMessage(innermost(err))} (${code})` : errorMessage(innermost(err)) };
}

/** The session is gone on the manager's side (it restarted, or closed the session): a new one is needed. */
export function isSessionGone(err: unknown): boolean {
  return err instanceof StreamableHTTPError && err.code === 404;
}

/**
 * The request got no HTTP answer at all (refused, reset, timed out): the link is down. An HTTP error answer means
 * the manager is there and refused this one message.
 */
export function isUnreachable(err: unknown): boolean {
  return !(err instanceof StreamableHTTPError);
}
