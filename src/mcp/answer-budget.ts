import { FleetError } from "../errors.js";

/**
 * How large a tool's answer may be. An assistant reads the whole answer into its context: Claude Code saves an
 * answer over 50,000 characters to a file and refuses one over 25,000 tokens, other clients just fill their
 * context. Every answer therefore stays within ANSWER_MAX_CHARS of text, whatever the arguments and whatever the
 * workers sent: per-field caps (here and in the views) keep one entry small, and a list ends its page early, with
 * a cursor, before the next entry would take the answer past the budget (see docs/architecture.md).
 */
export const ANSWER_MAX_CHARS = 50_000;

/** The estimate the budget is checked with: about four characters of JSON a token. */
export const estimateTokens = (chars: number) => Math.ceil(chars / 4);

/** Any cursor this server issues is at most this long; a page's budget reserves room for one. */
export const CURSOR_MAX_CHARS = 120;

/** Caps that keep one entry of an answer small, applied when a view is built. */
export const CAPS = {
  /** A reason's message (the code is the stable part; the message may quote a worker's collector errors). */
  reasonMessage: 200,
  /** A label key and a label value. */
  labelText: 63,
  /** Labels shown in a list's row (all of them, up to the wire's 64, in get_worker_status). */
  rowLabels: 16,
  /** Any other string a worker or an announcer sent (host names, versions, OS names, mounts, errors). */
  text: 128,
  /** Host names, which may be up to 253 characters (RFC 1123). */
  hostname: 253,
  /** Addresses of one announcement. */
  addresses: 4,
  /** Unverified announcements shown in list_workers (the newest first; the count covers every one). */
  unverified: 20,
  /** A failed request's error text in an answer. */
  error: 300,
} as const;

/** `s` cut to `max` characters, the cut marked with an ellipsis. */
export function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/**
 * The longest run of `rows`, taken from the front, whose answer stays within `budget` characters, given the
 * length of the answer without any rows (`emptyChars`, measured with a cursor of CURSOR_MAX_CHARS in it) and what
 * of a row the answer holds (`shown`). Exact: an array's JSON is its entries' JSON joined with commas. Always
 * keeps the first row; the caps make sure one row fits on its own.
 */
export function fitRows<R>(rows: R[], emptyChars: number, budget = ANSWER_MAX_CHARS, shown: (row: R) => unknown = (r) => r): { rows: R[]; cut: boolean } {
  let used = emptyChars;
  for (let i = 0; i < rows.length; i++) {
    used += JSON.stringify(shown(rows[i]!)).length + (i > 0 ? 1 : 0);
    if (used > budget && i > 0) return { rows: rows.slice(0, i), cut: true };
  }
  return { rows, cut: false };
}

/** What is thrown when an answer would pass the budget in spite of the caps: a defect, never the workers' doing. */
export function answerTooLarge(tool: string, chars: number): FleetError {
  return new FleetError("E_ANSWER_TOO_LARGE", `${tool}: an answer of ${chars} characters would exceed the ${ANSWER_MAX_CHARS}-character budget`);
}
