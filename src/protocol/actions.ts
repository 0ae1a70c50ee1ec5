import { createHash } from "node:crypto";
import { z } from "zod";
import { displayText } from "./text.js";

/*
 * The wire half of acting on the fleet (docs/actions.md): what a worker says it offers (its catalogue), what the
 * manager asks it to run (an invocation, by action name and arguments, never a command line), and what comes back
 * (output in bounded progress frames, then one result). Everything here is written by the worker host and read by
 * the manager, so every string is held to a class and every list to a length.
 */

/** `<name>` for built-in and command actions, `<server>.<tool>` for a tool of an MCP server on the host. */
export const ACTION_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9][A-Za-z0-9_-]{0,63})?$/;
export const ActionName = z
  .string()
  .regex(ACTION_NAME_PATTERN, "must be an action name: 1–64 of A-Z a-z 0-9 _ -, optionally .<tool> of the same");

export const PARAM_NAME_PATTERN = /^[a-z][a-z0-9_]{0,31}$/;
export const ParamName = z.string().regex(PARAM_NAME_PATTERN, "must be a parameter name: a-z 0-9 _, 1–32, beginning with a letter");

/** Descriptions the host's administrator wrote: printable, one line, bounded. */
export const ActionText = displayText(500);
const ParamText = displayText(200);

/** The longest string argument any parameter may accept, and the most values an enum may list. */
export const MAX_STRING_ARGUMENT = 4096;
export const MAX_ENUM_VALUES = 64;

const StringParam = z
  .object({
    type: z.literal("string"),
    description: ParamText.optional(),
    required: z.boolean().default(true),
    /** A JavaScript regular expression the whole value must match (it is anchored: ^(?:pattern)$). */
    pattern: z.string().max(512).optional(),
    enum: z.array(z.string().max(256)).min(1).max(MAX_ENUM_VALUES).optional(),
    maxLength: z.number().int().min(1).max(MAX_STRING_ARGUMENT).default(256),
    /** A value beginning with "-" is refused unless this is true, so an argument cannot pass as an option. */
    allowLeadingDash: z.boolean().default(false),
    default: z.string().max(MAX_STRING_ARGUMENT).optional(),
  })
  .strict();

const IntegerParam = z
  .object({
    type: z.literal("integer"),
    description: ParamText.optional(),
    required: z.boolean().default(true),
    minimum: z.number().int().safe().optional(),
    maximum: z.number().int().safe().optional(),
    default: z.number().int().safe().optional(),
  })
  .strict();

const BooleanParam = z
  .object({
    type: z.literal("boolean"),
    description: ParamText.optional(),
    required: z.boolean().default(false),
    default: z.boolean().optional(),
  })
  .strict();

export const ParamDef = z.discriminatedUnion("type", [StringParam, IntegerParam, BooleanParam]);
export type ParamDef = z.infer<typeof ParamDef>;
export const ParamDefs = z.record(ParamName, ParamDef).refine((p) => Object.keys(p).length <= 32, "at most 32 parameters");
export type ParamDefs = z.infer<typeof ParamDefs>;

export const ACTION_KINDS = ["builtin", "command", "mcp"] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

/** The most time any action may be given; its own `timeoutMs` is its default and its maximum. */
export const MAX_ACTION_TIMEOUT_MS = 3_600_000;
export const DEFAULT_ACTION_TIMEOUT_MS = 60_000;

/** A JSON Schema as an MCP server declared it: only its size is bounded here; the server validates arguments. */
const JsonSchemaObject = z.record(z.string().max(128), z.unknown()).refine((s) => JSON.stringify(s).length <= 8192, "input schema over 8,192 characters");

/**
 * One catalogue entry as the worker reports it. Built-in and command actions declare typed `params`, which the
 * manager checks arguments against before it sends anything; an MCP tool declares its `inputSchema`, which its
 * server checks.
 */
export const CatalogEntry = z
  .object({
    name: ActionName,
    kind: z.enum(ACTION_KINDS),
    description: ActionText,
    destructive: z.boolean(),
    params: ParamDefs.optional(),
    inputSchema: JsonSchemaObject.optional(),
    timeoutMs: z.number().int().min(100).max(MAX_ACTION_TIMEOUT_MS),
    /** At most this many invocations of this action at once on this host. */
    concurrency: z.number().int().min(1).max(64),
  })
  .strict();
export type CatalogEntry = z.infer<typeof CatalogEntry>;

/** A catalogue holds at most this many entries; a host defining more keeps the first ones by name. */
export const MAX_CATALOG_ENTRIES = 256;

/**
 * The catalogue's hash, sent in hello and heartbeats so the manager re-reads the catalogue when it changes. Both
 * sides compute it over the entries as parsed by `CatalogEntry`, sorted by name; the manager keeps a catalogue
 * under the hash it computed itself, so a worker cannot pass its catalogue off as another's.
 */
export const CatalogHash = z.string().regex(/^[0-9a-f]{16}$/, "must be 16 lower-case hex digits");

export function catalogHash(entries: readonly CatalogEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return createHash("sha256").update(JSON.stringify(sorted)).digest("hex").slice(0, 16);
}

/** One entry's definition hash: list_actions groups identical definitions offered by many workers under it. */
export function definitionHash(entry: CatalogEntry): string {
  return createHash("sha256").update(JSON.stringify(entry)).digest("hex").slice(0, 16);
}

// ---- methods (the manager's requests; their schemas are registered in methods.ts) ----

/** actions.list: the catalogue a page at a time (a page fits one frame). */
export const ListParams = z.object({ cursor: z.number().int().min(0).max(MAX_CATALOG_ENTRIES).optional() }).strict();
export const ListResult = z.object({
  hash: CatalogHash,
  total: z.number().int().min(0).max(MAX_CATALOG_ENTRIES),
  entries: z.array(CatalogEntry).max(MAX_CATALOG_ENTRIES),
  /** The cursor of the next page, or null on the last. */
  next: z.number().int().min(1).max(MAX_CATALOG_ENTRIES).nullable(),
});
export type ListResult = z.infer<typeof ListResult>;

export const InvocationId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1–64 of A-Z a-z 0-9 _ -");

/** A JSON value as an argument: bounded in size; each parameter's own type is checked against its definition. */
export const Arguments = z
  .record(z.string().max(128), z.unknown())
  .refine((a) => JSON.stringify(a).length <= 16_384, "arguments over 16,384 characters");
export type Arguments = z.infer<typeof Arguments>;

/** actions.run: start one invocation; the answer comes when it has ended, output before it in progress frames. */
export const RunParams = z
  .object({
    invocation: InvocationId,
    action: ActionName,
    arguments: Arguments,
    /** At most the action's own timeout; the worker uses the smaller of the two. */
    timeoutMs: z.number().int().min(100).max(MAX_ACTION_TIMEOUT_MS),
  })
  .strict();
export type RunParams = z.infer<typeof RunParams>;

/** actions.cancel: SIGTERM to the invocation's process group, SIGKILL 5 s later; its run answers `cancelled`. */
export const CancelParams = z.object({ invocation: InvocationId }).strict();
export const CancelResult = z.object({ found: z.boolean() });

/** What the worker keeps of an invocation's output at most, and streams to the manager as it comes. */
export const MAX_KEPT_OUTPUT_BYTES = 1024 * 1024;
/** The end of each stream in the final answer. */
export const TAIL_BYTES = 4096;
/** One output frame's data, in characters (JSON escaping can make a frame up to six times longer). */
export const MAX_OUTPUT_CHUNK_CHARS = 8192;
/** The most output frames a worker sends a second, over all its invocations: well inside the session's rate limit. */
export const OUTPUT_FRAMES_PER_SECOND = 20;

export const OUTPUT_STREAMS = ["stdout", "stderr"] as const;
export const OutputChunk = z.object({
  stream: z.enum(OUTPUT_STREAMS),
  data: z.string().max(MAX_OUTPUT_CHUNK_CHARS),
});
export type OutputChunk = z.infer<typeof OutputChunk>;

/** The worker's own ending statuses; the manager adds pending, running, undeliverable, lost and skipped. */
export const RUN_STATUSES = ["succeeded", "failed", "timed_out", "cancelled"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

const StreamSummary = z.object({
  /** The last ≤ TAIL_BYTES of the stream as UTF-8 text (invalid bytes replaced). */
  tail: z.string().max(TAIL_BYTES),
  /** Everything the program wrote to the stream, in bytes. */
  bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Bytes of the stream streamed to the manager (at most MAX_KEPT_OUTPUT_BYTES over both streams). */
  kept: z.number().int().min(0).max(MAX_KEPT_OUTPUT_BYTES),
});

export const RunResult = z.object({
  status: z.enum(RUN_STATUSES),
  exitCode: z.number().int().min(-1).max(255).nullable(),
  /** The signal that ended the program, if one did (SIGTERM, SIGKILL, ...). */
  signal: z.string().regex(/^SIG[A-Z0-9]{1,10}$/).nullable(),
  /** On the worker's clock: when the program started and ended. */
  startedAt: z.iso.datetime(),
  endedAt: z.iso.datetime(),
  durationMs: z.number().int().min(0).max(2 * MAX_ACTION_TIMEOUT_MS),
  stdout: StreamSummary,
  stderr: StreamSummary,
  /**
   * A built-in's result (matching its output schema) or an MCP tool's structuredContent. The worker leaves it out
   * (and sets structuredOmitted) if it would not fit a frame.
   */
  structured: z.record(z.string().max(128), z.unknown()).optional(),
  structuredOmitted: z.boolean().optional(),
  /** Why it failed without an exit code: SPAWN_FAILED, SERVER_DIED, TOOL_ERROR, ... */
  error: z.string().regex(/^[A-Z][A-Z0-9_]{0,31}$/).optional(),
});
export type RunResult = z.infer<typeof RunResult>;

/** Refusals, as the error code of the response to actions.run (the manager reports the code, never the message). */
export const RUN_REFUSALS = {
  unknown_action: "the host does not define this action",
  invalid_arguments: "an argument does not match its parameter",
  busy: "the host is running as many invocations as it allows",
  duplicate_invocation: "an invocation with this id is already running",
} as const;
