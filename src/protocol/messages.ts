import { z } from "zod";
import { CatalogHash, OutputChunk } from "./actions.js";
import { MetricsSummary } from "./metrics.js";
import {
  DetailText,
  Hostname,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  PlatformWord,
  tokenText,
  VersionText,
} from "./text.js";

/**
 * The protocol version this build speaks. A manager may accept several; a worker speaks exactly one. Version 2
 * holds every worker-controlled string to a narrow class and every figure to a physical range (docs/protocol.md);
 * a version-1 agent is refused at hello with 4001 rather than at its first free-text field.
 */
export const PROTOCOL_VERSION = 2;
export const SUPPORTED_PROTOCOLS: readonly number[] = [2];

/** One WebSocket frame may hold at most this much; the server and the client both enforce it. */
export const MAX_FRAME_BYTES = 64 * 1024;
/**
 * How long a worker waits for its connection to be upgraded (TCP, TLS, HTTP upgrade) before it gives up and backs
 * off. The manager sheds connections that waited for a handshake slot nearly this long (see handshake-gate.ts).
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/** RFC 1123 host label: how worker ids look everywhere (certificates, mDNS names, tool arguments). */
export const WORKER_ID_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const WorkerId = z.string().regex(WORKER_ID_PATTERN, "must be a DNS label: a-z, 0-9 and '-', 1–63 characters, no '-' at either end");

const LabelKey = z.string().regex(LABEL_KEY_PATTERN, "label keys are Kubernetes-like: [prefix/]name, the name 1–63 of A-Z a-z 0-9 . _ - beginning and ending with a letter or digit");
const LabelValue = z.string().regex(LABEL_VALUE_PATTERN, "label values are empty or 1–63 of A-Z a-z 0-9 . _ - beginning and ending with a letter or digit");
export const Labels = z
  .record(LabelKey, LabelValue)
  .refine((l) => Object.keys(l).length <= 64, "at most 64 labels");
export type Labels = z.infer<typeof Labels>;

const RequestId = z.union([z.string().min(1).max(64), z.number().int().nonnegative()]);

export const Hello = z.object({
  type: z.literal("hello"),
  protocol: z.number().int().positive(),
  id: WorkerId,
  hostname: Hostname,
  agentVersion: VersionText,
  labels: Labels,
  platform: z.object({
    os: PlatformWord,
    arch: PlatformWord,
    release: tokenText(64),
  }),
  /** The hash of the actions this host offers (actions.ts); absent from an agent that offers none. */
  catalog: CatalogHash.optional(),
  /**
   * The worker enrolled itself and can take a renewed certificate over this session (certificate.renew and
   * certificate.install); absent from a worker whose certificate was installed by hand.
   */
  renewable: z.boolean().optional(),
});

export const Heartbeat = z.object({
  type: z.literal("heartbeat"),
  seq: z.number().int().nonnegative(),
  metrics: MetricsSummary,
  /** As in hello: when it differs from the last one, the manager reads the catalogue again. */
  catalog: CatalogHash.optional(),
});

/** A worker's answer to a failed request: the code is what the manager reports; the message only goes to its log. */
export const ErrorBody = z.object({
  code: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/, "must be an identifier: A-Z a-z 0-9 _, 1–32, beginning with a letter"),
  message: DetailText,
});

export const Response = z
  .object({
    type: z.literal("response"),
    id: RequestId,
    result: z.unknown().optional(),
    error: ErrorBody.optional(),
  })
  .refine((r) => (r.error === undefined) !== (r.result === undefined), "a response has exactly one of result and error");

export const Progress = z.object({
  type: z.literal("progress"),
  id: RequestId,
  progress: z.number().nonnegative(),
  total: z.number().nonnegative().optional(),
  message: DetailText.optional(),
  /** Output of a running action (actions.run): `progress` is then the bytes streamed so far. */
  output: OutputChunk.optional(),
});

/**
 * Why a worker is leaving. `shutdown`: it was asked to stop (a signal, the service manager); `restart`: it stops
 * to start again at once; `error`: it stops because it cannot go on.
 */
export const GOODBYE_REASONS = ["shutdown", "restart", "error"] as const;
export type GoodbyeReason = (typeof GOODBYE_REASONS)[number];

export const Goodbye = z.object({
  type: z.literal("goodbye"),
  reason: z.enum(GOODBYE_REASONS, { error: `must be one of ${GOODBYE_REASONS.join(", ")}` }),
});

export const Welcome = z.object({
  type: z.literal("welcome"),
  protocol: z.number().int().positive(),
  sessionId: z.string().max(64),
  heartbeatIntervalMs: z.number().int().min(50).max(3_600_000),
  managerVersion: z.string().max(64),
});

/** The manager changed the heartbeat pace (the fleet grew or shrank); from now on, beat at this interval. */
export const Settings = z.object({
  type: z.literal("settings"),
  heartbeatIntervalMs: z.number().int().min(50).max(3_600_000),
});

export const Request = z.object({
  type: z.literal("request"),
  id: RequestId,
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
});

// Unknown keys are stripped rather than refused: a newer peer may add fields within one protocol version.
// A new message type, though, is a protocol change and is refused.
export const WorkerMessage = z.discriminatedUnion("type", [Hello, Heartbeat, Response, Progress, Goodbye]);
export const ManagerMessage = z.discriminatedUnion("type", [Welcome, Request, Settings]);

export type Hello = z.infer<typeof Hello>;
export type Heartbeat = z.infer<typeof Heartbeat>;
export type Response = z.infer<typeof Response>;
export type Progress = z.infer<typeof Progress>;
export type Goodbye = z.infer<typeof Goodbye>;
export type Welcome = z.infer<typeof Welcome>;
export type Request = z.infer<typeof Request>;
export type Settings = z.infer<typeof Settings>;
export type WorkerMessage = z.infer<typeof WorkerMessage>;
export type ManagerMessage = z.infer<typeof ManagerMessage>;
export type RequestId = z.infer<typeof RequestId>;

/**
 * `otherProtocol`: the frame is a hello naming a protocol version this build does not speak. Its other fields may
 * follow that version's rules, so the answer is "unsupported protocol", not a complaint about a field.
 */
export type Decoded<T> = { ok: true; message: T } | { ok: false; error: string; otherProtocol?: number };

function decode<T>(schema: z.ZodType<T>, data: unknown, isBinary: boolean): Decoded<T> {
  if (isBinary) return { ok: false, error: "binary frames are not part of the protocol" };
  let value: unknown;
  try {
    value = JSON.parse(String(data));
  } catch {
    return { ok: false, error: "frame is not JSON" };
  }
  let parsed: ReturnType<typeof schema.safeParse>;
  try {
    parsed = schema.safeParse(value);
  } catch (err) {
    // safeParse reports what does not match; what it throws on (a nesting too deep for the stack) is refused too.
    return { ok: false, error: `frame could not be validated (${err instanceof Error ? err.name : "error"})` };
  }
  if (parsed.success) return { ok: true, message: parsed.data };
  const protocol = (value as { type?: unknown; protocol?: unknown } | null)?.protocol;
  if ((value as { type?: unknown } | null)?.type === "hello" && Number.isSafeInteger(protocol) && (protocol as number) > 0 && !SUPPORTED_PROTOCOLS.includes(protocol as number)) {
    return { ok: false, error: `unsupported protocol ${protocol as number}`, otherProtocol: protocol as number };
  }
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.map((seg, i) => pathSegment(seg, issue.path[i - 1])).join(".") : "message";
  return { ok: false, error: `invalid ${where}: ${issue?.message ?? "does not match the protocol"}` };
}

/**
 * A path segment as it may appear in an error: array indexes and field names of the protocol. A record key (a
 * label key) is the sender's text, and the error goes into close reasons and the health reasons tools show.
 */
function pathSegment(segment: PropertyKey, parent: PropertyKey | undefined): string {
  if (typeof segment === "number") return String(segment);
  if (parent === "labels") return "*";
  return typeof segment === "string" && /^[A-Za-z][A-Za-z0-9]{0,31}$/.test(segment) ? segment : "*";
}

/** Parse and validate one frame a worker sent. Never throws. */
export function decodeWorkerMessage(data: unknown, isBinary = false): Decoded<WorkerMessage> {
  return decode(WorkerMessage, data, isBinary);
}

/** Parse and validate one frame the manager sent. Never throws. */
export function decodeManagerMessage(data: unknown, isBinary = false): Decoded<ManagerMessage> {
  return decode(ManagerMessage, data, isBinary);
}

export function encode(message: WorkerMessage | ManagerMessage): string {
  return JSON.stringify(message);
}
