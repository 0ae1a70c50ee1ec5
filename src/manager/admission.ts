import type { Identity } from "../pki/identity.js";
import { CloseCode, type AppCloseCode } from "../protocol/close-codes.js";
import type { SessionLimits } from "./limits.js";
import { SessionRate } from "./session-rate.js";

/** Buckets kept for at most this many worker ids (see SessionRate). */
export const MAX_RATE_IDS = 10_000;

/** What is known of an upgraded connection when it asks to become a session. */
export interface Candidate {
  identity: Identity | null;
  serialNumber: string;
  address: string | null;
  /** Sessions open now, and those from this address still waiting for `hello`. */
  sessions: number;
  pendingFromAddress: number;
}

/** Why a candidate is turned away: the close code, its detail, and the log line's kind, text and fields. */
export interface Refusal {
  code: AppCloseCode;
  detail: string;
  kind: string;
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * Decides, once the WebSocket upgrade is done, whether a connection may become a worker session. In order: a
 * certificate revoked since its handshake (a CRL reloaded in between), a certificate that is not a worker of this
 * fleet, the session cap, sessions waiting for `hello` from the same address, and the identity's session rate.
 * The cheaper refusals come first, and only a candidate that would otherwise be let in uses up a token.
 */
export class SessionAdmission {
  readonly rate: SessionRate;

  constructor(
    private readonly limits: SessionLimits,
    private readonly fleet: string,
    private readonly isRevoked: (serialNumber: string) => boolean,
    now?: () => number,
  ) {
    this.rate = new SessionRate(limits.sessionsPerMinute, limits.sessionBurst, MAX_RATE_IDS, now);
  }

  judge(c: Candidate): Refusal | null {
    const { identity: id, serialNumber: serial, address } = c;
    if (this.isRevoked(serial)) {
      return { code: CloseCode.REVOKED, detail: `serial ${serial}`, kind: "revoked", msg: "refused: certificate revoked", fields: { address, serial, worker: id?.id } };
    }
    if (!id || id.role !== "worker" || id.fleet !== this.fleet) {
      const what = id ? `${id.role} "${id.id}" of fleet "${id.fleet}"` : "no mcp-fleet identity";
      return { code: CloseCode.WRONG_ROLE, detail: what, kind: "wrong-role", msg: "refused: certificate is not a worker of this fleet", fields: { address, certificate: what, serial } };
    }
    if (c.sessions >= this.limits.maxSessions) {
      return { code: CloseCode.TOO_MANY_SESSIONS, detail: `limit ${this.limits.maxSessions}`, kind: "too-many", msg: "refused: too many sessions", fields: { address, worker: id.id, sessions: c.sessions } };
    }
    if (c.pendingFromAddress >= this.limits.maxPendingPerAddress) {
      return {
        code: CloseCode.TOO_MANY_PENDING,
        detail: `limit ${this.limits.maxPendingPerAddress}`,
        kind: "too-many-pending",
        msg: "refused: too many sessions from this address are waiting for hello",
        fields: { address, worker: id.id, pending: c.pendingFromAddress },
      };
    }
    if (!this.rate.take(id.id)) {
      const detail = `over ${this.limits.sessionBurst} new sessions, then ${this.limits.sessionsPerMinute}/min`;
      return { code: CloseCode.RATE_LIMITED, detail, kind: "session-rate", msg: "refused: this worker opens sessions too often", fields: { address, worker: id.id } };
    }
    return null;
  }
}
