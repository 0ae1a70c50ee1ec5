import { z } from "zod";

/*
 * Every string a worker (or an mDNS announcer) controls is held to what it needs to be, so that what reaches the
 * manager's tools is data in a narrow shape, not free text. Two halves live here side by side: the patterns the
 * manager enforces at the wire, and the functions the agent uses to make its own text fit them (so an honest agent
 * never sends what the manager refuses). The table of which field uses which class is in docs/protocol.md.
 * Every error message here names the rule, never the value: the value is the hostile part.
 */

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1–63 each, 253 in all. */
export const HOSTNAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
export const Hostname = z.string().regex(HOSTNAME_PATTERN, "must be an RFC 1123 host name: labels of A-Z a-z 0-9 and inner '-', joined by '.', at most 253 characters");

/** Label values as in Kubernetes: empty, or 1–63 of A-Z a-z 0-9 . _ - beginning and ending with a letter or digit. */
export const LABEL_VALUE_PATTERN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
/** Label keys as in Kubernetes: an optional DNS-subdomain prefix and '/', then a name like a value but not empty. */
export const LABEL_KEY_PATTERN =
  /^(?:(?=[^/]{1,253}\/)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/** Version characters (semver and the like): a letter or digit, then letters, digits and . + - _, at most 64. */
export const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
export const VersionText = z.string().regex(VERSION_PATTERN, "must be version characters: A-Z a-z 0-9 . + - _, 1–64, beginning with a letter or digit");

/** A short lower-case word such as Node's process.platform or process.arch. */
export const PlatformWord = z.string().regex(/^[a-z0-9_]{1,32}$/, "must be 1–32 of a-z 0-9 _");

/**
 * Token characters: what file paths, device names, kernel releases and interface names need, without spaces or
 * quotes. The agent writes anything else as %XX (UTF-8 bytes, as in URLs), so nothing is lost and a reader sees
 * where a character was replaced.
 */
const TOKEN_CHARS = "A-Za-z0-9._~@%+=,:/\\-";
const TOKEN_CHAR = new RegExp(`[${TOKEN_CHARS}]`);
const tokenPatterns = new Map<number, RegExp>();
function tokenPattern(max: number): RegExp {
  let p = tokenPatterns.get(max);
  if (!p) tokenPatterns.set(max, (p = new RegExp(`^[${TOKEN_CHARS}]{0,${max}}$`)));
  return p;
}
export const tokenText = (max: number) =>
  z.string().regex(tokenPattern(max), `must be at most ${max} of A-Z a-z 0-9 . _ ~ @ % + = , : / - (others written as %XX)`);

/**
 * Display text (an OS or CPU name): printable characters and plain spaces only: no control or format characters
 * (no line breaks, no bidirectional overrides), no other separators.
 */
const DISPLAY_PATTERN = /^(?:[^\p{C}\p{Z}]| )*$/u;
export const displayText = (max: number) =>
  z.string().max(max, `at most ${max} characters`).regex(DISPLAY_PATTERN, "must be printable characters and spaces only");

/** Operator detail: printable ASCII, no line breaks, at most 120. Never shown to an assistant (docs/protocol.md). */
export const DETAIL_MAX = 120;
export const DetailText = z.string().regex(/^[\x20-\x7e]{0,120}$/, "must be at most 120 printable ASCII characters");

/** An error code such as ETIMEDOUT, TIMEOUT or FAILED. */
export const ERROR_CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,31}$/;
export const ErrorCode = z.string().regex(ERROR_CODE_PATTERN, "must be an error code: A-Z 0-9 _, 1–32, beginning with a letter");

/**
 * The classes a message's schema is built from, so one definition serves twice: held to their forms at the wire
 * (WIRE_KIT), or as plain strings and numbers for the MCP tools' declared output (PLAIN_KIT). The wire has already
 * held every string to its form and every figure to its range; repeated in each tool that returns a status, the
 * patterns and ranges took about 5 KB of the 32 KB that `tools/list` may use, and a tool may shorten a string
 * (marked with an ellipsis) that the pattern would then refuse.
 */
export interface TextKit {
  datetime: z.ZodType<string>;
  hostname: z.ZodType<string>;
  token: (max: number) => z.ZodType<string>;
  /** OS and CPU names: printable, short. */
  name: (max: number) => z.ZodType<string>;
  code: z.ZodType<string>;
  detail: z.ZodType<string>;
  range: (min: number, max: number) => z.ZodNumber;
  /** A whole number in a range (declared plainly as an integer, without zod's safe-integer bounds, in the tools' form). */
  count: (min: number, max: number) => z.ZodType<number>;
  /** One of a fixed set of names (declared as a plain string in the tools' form). */
  names: <T extends string>(values: readonly [T, ...T[]], error?: string) => z.ZodType<T>;
}

export const WIRE_KIT: TextKit = {
  datetime: z.iso.datetime(),
  hostname: Hostname,
  token: tokenText,
  name: displayText,
  code: ErrorCode,
  detail: DetailText,
  range: (min, max) => z.number().min(min).max(max),
  count: (min, max) => z.number().int().min(min).max(max),
  names: (values, error) => z.enum(values, error === undefined ? undefined : { error }),
};

export const PLAIN_KIT: TextKit = {
  datetime: z.string(),
  hostname: z.string(),
  token: () => z.string(),
  name: () => z.string(),
  code: z.string(),
  detail: z.string(),
  range: () => z.number(),
  count: () => z.number().refine(Number.isSafeInteger, "must be a whole number").meta({ type: "integer" }),
  // Typed as the names, which the wire has already held a value to; the tools' form only declares a string.
  names: <T extends string>() => z.string() as unknown as z.ZodType<T>,
};

// ---- The agent's side: make text fit. Each result passes the schema of its class. ----

/** A host name made to fit RFC 1123: other characters become '-', labels and the whole are cut to length. */
export function toHostname(text: string, fallback: string): string {
  const labels = text
    .split(".")
    .map((l) => l.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 63).replace(/^-+|-+$/g, ""))
    .filter((l) => l.length > 0);
  let out = "";
  for (const l of labels) {
    const next = out ? `${out}.${l}` : l;
    if (next.length > 253) break;
    out = next;
  }
  return HOSTNAME_PATTERN.test(out) ? out : fallback;
}

/** Token text: characters outside the class as %XX, then cut to `max` without splitting an escape. */
export function toToken(text: string, max: number): string {
  let out = "";
  for (const ch of text) {
    const piece =
      ch !== "%" && TOKEN_CHAR.test(ch)
        ? ch
        : [...Buffer.from(ch, "utf8")].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("");
    if (out.length + piece.length > max) break;
    out += piece;
  }
  return out;
}

/** Display text: control, format and separator characters become U+FFFD (or a space), cut to `max` with "…". */
export function toDisplay(text: string, max: number): string {
  const clean = text.replace(/[\t\r\n]/g, " ").replace(/(?:(?! )[\p{C}\p{Z}])/gu, "\uFFFD");
  const chars = [...clean];
  if (clean.length <= max) return clean;
  let out = "";
  for (const ch of chars) {
    if (out.length + ch.length > max - 1) break;
    out += ch;
  }
  return `${out}…`;
}

/** Operator detail: line breaks become spaces, other non-printable or non-ASCII characters '?', cut to 120. */
export function toDetail(text: string): string {
  return text
    .replace(/[\r\n\t]+/g, " ")
    .replace(/[^\x20-\x7e]/g, "?")
    .slice(0, DETAIL_MAX);
}

/** An error code from an error: its own `code` when that is one, else `fallback`. */
export function toErrorCode(code: unknown, fallback: string): string {
  if (typeof code !== "string") return fallback;
  const up = code.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
  return ERROR_CODE_PATTERN.test(up) ? up : fallback;
}
