import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { FleetError } from "../errors.js";
import { lockedUpdate, type LockedFile } from "../pki/locked-update.js";
import { CertificatePem, CsrPem, TokenId } from "../protocol/join.js";
import { Labels, WorkerId } from "../protocol/messages.js";
import { Hostname } from "../protocol/text.js";
import { APPROVAL_MODES } from "./api.js";
import type { TokenRecord } from "./tokens.js";

/*
 * The join file, tokens.json beside the fleet CA: the join tokens, and the join requests with the operators'
 * decisions on them. `mcp-fleet token` and the manager both change it, under one lock; the manager watches it, so
 * a decision made on the command line reaches a running manager. It holds no secret in the clear, but what it
 * holds (secret hashes, pending hosts) is the operator's business only: mode 0600.
 */

const MODE = 0o600;
const Hex64 = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits");
const Instant = z.iso.datetime();

const TokenRecordSchema = z.object({
  id: TokenId,
  secretHash: Hex64,
  createdAt: Instant,
  expiresAt: Instant,
  uses: z.number().int().min(1),
  used: z.number().int().min(0),
  labels: Labels,
  approve: z.enum(APPROVAL_MODES),
  replace: z.boolean(),
  revokedAt: Instant.nullable(),
}) satisfies z.ZodType<TokenRecord>;

export const REQUEST_ID_PATTERN = /^[a-z0-9]{8}$/;
export const REQUEST_STATUSES = ["pending", "approved", "denied"] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export interface RequestRecord {
  /** 8 of a-z 0-9. */
  requestId: string;
  requestedId: string;
  hostname: string;
  address: string | null;
  /** SHA-256 of the CSR's public key (SPKI DER), hex: the same key asking again finds its request. */
  keyFingerprint: string;
  csr: string;
  tokenId: string | null;
  labels: Labels;
  createdAt: string;
  expiresAt: string;
  status: RequestStatus;
  decidedAt?: string;
  /** `cli:<user>` or `mcp:<client name>`. */
  decidedBy?: string;
  /** Set by the manager once it issued the certificate of an approved request. */
  certificate?: string;
  serialNumber?: string;
  notAfter?: string;
}

const RequestRecordSchema = z.object({
  requestId: z.string().regex(REQUEST_ID_PATTERN, "a request id is 8 of a-z 0-9"),
  requestedId: WorkerId,
  hostname: Hostname,
  address: z.string().max(64).nullable(),
  keyFingerprint: Hex64,
  csr: CsrPem,
  tokenId: TokenId.nullable(),
  labels: Labels,
  createdAt: Instant,
  expiresAt: Instant,
  status: z.enum(REQUEST_STATUSES),
  decidedAt: Instant.optional(),
  decidedBy: z.string().min(1).max(200).optional(),
  certificate: CertificatePem.optional(),
  serialNumber: z.string().regex(/^[0-9a-f]+$/, "must be lower-case hex").optional(),
  notAfter: Instant.optional(),
}) satisfies z.ZodType<RequestRecord>;

export interface JoinFile {
  version: 1;
  tokens: TokenRecord[];
  requests: RequestRecord[];
}

const JoinFileSchema = z.object({
  version: z.literal(1),
  tokens: z.array(TokenRecordSchema),
  requests: z.array(RequestRecordSchema),
}) satisfies z.ZodType<JoinFile>;

const empty = (): JoinFile => ({ version: 1, tokens: [], requests: [] });

export function tokensPathBesideCa(caPath: string): string {
  return join(dirname(caPath), "tokens.json");
}

/** `tokens[2].expiresAt`: where in the file a bad value is. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join("") || "the top level";
}

/** Checks what was read from `path`; the error names the file and the first bad field. */
export function parseJoinFile(path: string, raw: unknown, what = "is not a join file"): JoinFile {
  const parsed = JoinFileSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new FleetError("E_CONFIG", `${path} ${what}: ${fieldPath(issue.path)}: ${issue.message}`);
}

/** A missing file is an empty one: no token made yet. */
export async function readJoinFile(path: string): Promise<JoinFile> {
  if (!existsSync(path)) return empty();
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new FleetError("E_CONFIG", `${path} is not readable JSON: ${(err as Error).message}`);
  }
  return parseJoinFile(path, raw);
}

const joinFile = (path: string): LockedFile<JoinFile> => ({
  path,
  read: readJoinFile,
  serialize: (f) => `${JSON.stringify(f, null, 2)}\n`,
  mode: MODE,
  busy: { code: "E_CONFIG", holder: "another mcp-fleet process (a token command or the manager)" },
});

/**
 * Runs `change` on the join file and writes what it leaves, one process at a time. What `change` leaves is
 * checked before it is written: a bad record fails here, not in the next reader.
 */
export async function updateJoinFile<T>(path: string, change: (f: JoinFile) => T | Promise<T>): Promise<T> {
  return lockedUpdate(joinFile(path), async (f) => {
    const result = await change(f);
    parseJoinFile(path, f, "would not be a join file after this change");
    return result;
  });
}
