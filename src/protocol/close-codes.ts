/**
 * Application close codes (4000–4999), one per cause, so a peer, a log reader or a test can act on the cause
 * without parsing reason text. Each carries a readable reason; the reason sent on the wire may add detail.
 */
export const CloseCode = {
  /** A frame that is not JSON, not a valid message, or not allowed in the session's current phase. */
  PROTOCOL_ERROR: 4000,
  /** `hello.protocol` is a version the manager does not speak. */
  UNSUPPORTED_PROTOCOL: 4001,
  /** `hello.id` differs from the id in the client certificate. */
  IDENTITY_MISMATCH: 4002,
  /** The client certificate's role is not `worker`. */
  WRONG_ROLE: 4003,
  /** The certificate was revoked while the session was open. */
  REVOKED: 4004,
  /** A newer session for the same worker id took over. */
  REPLACED: 4005,
  /** The peer sent more messages than allowed. */
  RATE_LIMITED: 4006,
  /** No `hello` arrived in time after the TLS handshake. */
  HELLO_TIMEOUT: 4007,
  /** The socket stayed open but carried no heartbeat for far longer than the unhealthy bound. */
  HEARTBEAT_TIMEOUT: 4008,
  /** The manager holds as many sessions as it is allowed to. */
  TOO_MANY_SESSIONS: 4009,
  /** The peer does not read what it is sent; its send buffer passed the cap. */
  SLOW_CONSUMER: 4010,
  /** The worker did not get `welcome` in time (sent by the worker). */
  WELCOME_TIMEOUT: 4011,
  /** Too many sessions from the peer's address are still waiting for their `hello`. */
  TOO_MANY_PENDING: 4012,
} as const;

export type CloseCodeName = keyof typeof CloseCode;
export type AppCloseCode = (typeof CloseCode)[CloseCodeName];

const reasons: Record<AppCloseCode, string> = {
  4000: "protocol error",
  4001: "unsupported protocol version",
  4002: "hello id does not match certificate",
  4003: "certificate role not allowed here",
  4004: "certificate revoked",
  4005: "replaced by a newer session",
  4006: "rate limited",
  4007: "no hello in time",
  4008: "heartbeats stopped",
  4009: "too many sessions",
  4010: "slow consumer",
  4011: "no welcome in time",
  4012: "too many sessions waiting for hello from this address",
};

const standard: Record<number, string> = {
  1000: "normal closure",
  1001: "going away",
  1005: "no status",
  1006: "closed without a close frame",
  1009: "message too big",
  1011: "internal error",
};

/** A readable name for any close code, application or standard. */
export function describeCloseCode(code: number): string {
  return reasons[code as AppCloseCode] ?? standard[code] ?? `close code ${code}`;
}

export function closeCodeName(code: number): CloseCodeName | undefined {
  return (Object.keys(CloseCode) as CloseCodeName[]).find((k) => CloseCode[k] === code);
}

/**
 * Closes after which reconnecting at once is pointless: the same certificate and build will be refused again.
 * The worker backs off to its longest delay after one of these instead of hammering the manager.
 */
export const PERMANENT_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.UNSUPPORTED_PROTOCOL,
  CloseCode.IDENTITY_MISMATCH,
  CloseCode.WRONG_ROLE,
  CloseCode.REVOKED,
]);

/** WebSocket close reasons are limited to 123 bytes of UTF-8. */
export function closeReason(code: AppCloseCode, detail?: string): string {
  const text = detail ? `${reasons[code]}: ${detail}` : reasons[code];
  const buf = Buffer.from(text, "utf8");
  return buf.length <= 123 ? text : buf.subarray(0, 120).toString("utf8").replace(/\uFFFD*$/, "") + "...";
}
