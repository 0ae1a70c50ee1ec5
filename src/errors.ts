/**
 * Errors with stable codes, so callers and tests match on `code`, never on message text.
 */
export type FleetErrorCode =
  | "E_CONFIG"
  | "E_CERT"
  | "E_CERT_EXISTS"
  | "E_TIMEOUT"
  | "E_NOT_CONNECTED"
  | "E_UNKNOWN_WORKER"
  | "E_REMOTE"
  | "E_CLOSED"
  | "E_BAD_RESPONSE"
  | "E_ANSWER_TOO_LARGE"
  | "E_UNKNOWN_REQUEST"
  | "E_JOIN";

export class FleetError extends Error {
  readonly code: FleetErrorCode;
  constructor(code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FleetError";
    this.code = code;
  }
}

export function isFleetError(err: unknown, code?: FleetErrorCode): err is FleetError {
  return err instanceof FleetError && (code === undefined || err.code === code);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
