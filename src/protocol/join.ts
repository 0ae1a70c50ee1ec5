import { z } from "zod";
import { WorkerId } from "./messages.js";
import { DetailText, Hostname } from "./text.js";

/*
 * Joining the fleet: the join string an operator pastes, and the enrollment exchange a joining worker has with the
 * manager (HTTPS on the manager's own port, before the worker has a certificate). docs/joining.md tells the whole
 * flow; docs/protocol.md lists the codes.
 */

/** Token ids and secrets use this alphabet: lower-case letters and digits survive shells, URLs and copy-paste. */
export const TOKEN_ID_PATTERN = /^[a-z0-9]{6}$/;
export const TOKEN_SECRET_PATTERN = /^[a-z0-9]{24}$/;
export const TokenId = z.string().regex(TOKEN_ID_PATTERN, "a token id is 6 of a-z 0-9");
const TokenSecret = z.string().regex(TOKEN_SECRET_PATTERN, "a token secret is 24 of a-z 0-9");

/** SHA-256 of the fleet CA's public key (its DER SubjectPublicKeyInfo), lower-case hex: what a join string pins. */
export const PIN_PATTERN = /^[0-9a-f]{64}$/;
export const Pin = z.string().regex(PIN_PATTERN, "a CA pin is 64 lower-case hex digits (SHA-256 of the CA's public key)");

const JOIN_PREFIX = "mcpf1";

/**
 * What a join string holds. Without a token the request waits for an operator's approval; the pin is always
 * there, because it is what makes a rogue announcer harmless.
 */
export interface JoinString {
  token: { id: string; secret: string } | null;
  pin: string;
}

/** `mcpf1:<id>.<secret>:sha256:<pin>`, or `mcpf1:sha256:<pin>` for a host that waits to be approved. */
export function formatJoinString(j: JoinString): string {
  return j.token ? `${JOIN_PREFIX}:${j.token.id}.${j.token.secret}:sha256:${j.pin}` : `${JOIN_PREFIX}:sha256:${j.pin}`;
}

const JOIN_STRING_PATTERN = /^mcpf1:(?:([a-z0-9]{6})\.([a-z0-9]{24}):)?sha256:([0-9a-f]{64})$/;

/** Parses a join string; the error names what is wrong without echoing the secret. */
export function parseJoinString(text: string): { ok: true; join: JoinString } | { ok: false; error: string } {
  const m = JOIN_STRING_PATTERN.exec(text.trim());
  if (!m) {
    return {
      ok: false,
      error: `a join string looks like ${JOIN_PREFIX}:<6 of a-z0-9>.<24 of a-z0-9>:sha256:<64 hex> (or ${JOIN_PREFIX}:sha256:<64 hex> to wait for approval)`,
    };
  }
  const [, id, secret, pin] = m;
  return { ok: true, join: { token: id && secret ? { id, secret } : null, pin: pin! } };
}

/** The enrollment endpoint: HTTPS POST on the manager's port, on a TLS connection that named this server name. */
export const JOIN_PATH = "/join";
/**
 * A joining worker sends this SNI name: the manager then presents its chain up to the CA (so the worker can check
 * the pin before it sends anything) and lets the connection through without a client certificate, to this path
 * only. `.invalid` is reserved: it can never be a real host's name.
 */
export const JOIN_SERVERNAME = "join.mcp-fleet.invalid";
/** A join request body is at most this large (a P-256 CSR is ~500 bytes of PEM). */
export const MAX_JOIN_BODY_BYTES = 16 * 1024;
/** The manager holds a pending request's answer at most this long before it says "pending". */
export const MAX_JOIN_WAIT_MS = 25_000;
export const JOIN_PROTOCOL = 1;

const PemText = (label: string, max: number) =>
  z
    .string()
    .max(max)
    .regex(new RegExp(`^-----BEGIN ${label}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label}-----\\r?\\n?$`), `must be one PEM ${label}`);
export const CsrPem = PemText("CERTIFICATE REQUEST", 4096);
export const CertificatePem = PemText("CERTIFICATE", 8192);

export const JoinRequest = z
  .object({
    protocol: z.literal(JOIN_PROTOCOL),
    /** Absent: wait for an operator's approval. Sent inside TLS, after the pin was checked; stored hashed. */
    token: z.object({ id: TokenId, secret: TokenSecret }).strict().optional(),
    /** The id the worker asks for (default: its host name's first label). The manager decides. */
    requestedId: WorkerId,
    hostname: Hostname,
    csr: CsrPem,
    /** How long the manager may hold the answer while the request is pending (long poll). */
    waitMs: z.number().int().min(0).max(MAX_JOIN_WAIT_MS).default(0),
  })
  .strict();
export type JoinRequest = z.infer<typeof JoinRequest>;

/** Why a join request was refused. Each has its own message on both sides (JOIN_REFUSAL_TEXT). */
export const JOIN_REFUSALS = [
  "bad_request",
  "unknown_token",
  "wrong_secret",
  "expired_token",
  "exhausted_token",
  "revoked_token",
  "bad_csr",
  "id_taken",
  "denied",
  "request_expired",
  "rate_limited",
  "too_many_pending",
  "enrollment_disabled",
] as const;
export type JoinRefusal = (typeof JOIN_REFUSALS)[number];

export const JOIN_REFUSAL_TEXT: Record<JoinRefusal, string> = {
  bad_request: "the join request is not well formed",
  unknown_token: "no such join token",
  wrong_secret: "the join token's secret is wrong",
  expired_token: "the join token has expired",
  exhausted_token: "the join token has no uses left",
  revoked_token: "the join token was revoked",
  bad_csr: "the certificate request is not a valid P-256 request signed by its own key",
  id_taken: "the requested id belongs to another host's unexpired certificate",
  denied: "an operator denied this host's join request",
  request_expired: "the join request waited too long for approval and expired",
  rate_limited: "too many join attempts from this address; wait and retry",
  too_many_pending: "too many join requests are waiting for approval",
  enrollment_disabled: "this manager does not enroll hosts (it has no CA key)",
};

/** The HTTP status each refusal is sent with. */
export const JOIN_REFUSAL_STATUS: Record<JoinRefusal, number> = {
  bad_request: 400,
  unknown_token: 403,
  wrong_secret: 403,
  expired_token: 403,
  exhausted_token: 403,
  revoked_token: 403,
  bad_csr: 400,
  id_taken: 409,
  denied: 403,
  request_expired: 410,
  rate_limited: 429,
  too_many_pending: 429,
  enrollment_disabled: 503,
};

export const JoinAnswer = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("issued"),
    id: WorkerId,
    certificate: CertificatePem,
    /** The fleet CA, which the worker trusts from now on (its key matches the pin; the worker checks again). */
    ca: CertificatePem,
    notAfter: z.iso.datetime(),
  }),
  z.object({
    status: z.literal("pending"),
    /** The request's id, as list_join_requests and `mcp-fleet token requests` show it. */
    requestId: z.string().regex(/^[a-z0-9]{8}$/),
    retryAfterMs: z.number().int().min(0).max(3_600_000),
  }),
  z.object({
    status: z.literal("refused"),
    code: z.enum(JOIN_REFUSALS),
    message: DetailText,
    retryAfterMs: z.number().int().min(0).max(86_400_000).optional(),
  }),
]);
export type JoinAnswer = z.infer<typeof JoinAnswer>;
