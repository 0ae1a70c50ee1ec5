import { parseDuration } from "../../../config/duration.js";
import { JOURNAL_LINES_MAX, JOURNAL_MESSAGE_MAX, UNIT_NAME_MAX, type JournalEntry, type JournalResult } from "../../../protocol/diagnostics.js";
import { toDisplay, toToken } from "../../../protocol/text.js";
import { builtinEntry, DiagnosticError, type Builtin } from "./builtin.js";
import { capture } from "./command.js";
import { fitList } from "./fit.js";
import { commandFailure, journalPresent, UNIT_PARAM } from "./systemd.js";

export const PRIORITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] as const;

/** A span back from now (10m, 2h, 3d) or a time in the host's zone (YYYY-MM-DD[ HH:MM[:SS]]). */
const SINCE_PATTERN = "[1-9][0-9]{0,5}[smhd]|[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?";

// The fields read; journalctl leaves the others out (and writes a field over 4,096 bytes as null).
const FIELDS = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID";

export const journal: Builtin = {
  entry: builtinEntry({
    name: "journal",
    description: "The newest entries of the systemd journal, optionally of one unit, since a time, at or above a priority.",
    params: {
      unit: { ...UNIT_PARAM, required: false, description: "only this unit's entries" },
      since: { type: "string", pattern: SINCE_PATTERN, maxLength: 19, required: false, description: "10m, 2h, 3d back, or YYYY-MM-DD[ HH:MM[:SS]] host time" },
      lines: { type: "integer", minimum: 1, maximum: JOURNAL_LINES_MAX, default: 100, required: false, description: "how many of the newest entries" },
      priority: { type: "string", enum: [...PRIORITIES], required: false, description: "this priority and the more severe ones" },
    },
    timeoutMs: 30_000,
    concurrency: 4,
  }),

  async run(args, ctx) {
    if (!(await journalPresent())) throw new DiagnosticError("UNAVAILABLE", "there is no systemd journal on this host");
    const lines = typeof args.lines === "number" ? args.lines : 100;
    // Each value is one whole "--option=value" item, so none can pass as an option of its own.
    const argv: [string, ...string[]] = ["journalctl", "--output=json", "--no-pager", `--lines=${lines}`, `--output-fields=${FIELDS}`];
    if (typeof args.unit === "string") argv.push(`--unit=${args.unit}`);
    if (typeof args.since === "string") argv.push(`--since=${sinceArgument(args.since, Date.now())}`);
    if (typeof args.priority === "string") argv.push(`--priority=${args.priority}`);
    const out = await capture(argv, ctx);
    if (out.exitCode !== 0 && !out.truncated) throw commandFailure("journalctl", out);
    return parseJournal(out.stdout.toString("utf8"), { truncated: out.truncated, stderr: out.stderr });
  },
};

/** A span back from `now` as journalctl's "@<unix seconds>"; a date as given (journalctl reads it in host time). */
export function sinceArgument(since: string, now: number): string {
  return /^\d+[smhd]$/.test(since) ? `@${Math.floor((now - parseDuration(since)) / 1000)}` : since;
}

/** journalctl's JSON lines (oldest first) as a result holding the newest entries that fit. */
export function parseJournal(text: string, opts: { truncated: boolean; stderr: string }): JournalResult {
  const lines = text.split("\n");
  // A cut output ends in a partial line.
  if (opts.truncated) lines.pop();
  const entries: JournalEntry[] = [];
  for (const line of lines) {
    if (line.trim() === "") continue;
    const entry = toEntry(line);
    if (entry) entries.push(entry);
  }
  const warning = opts.stderr.split("\n").find((l) => l.trim() !== "");
  const newestFirst = entries.reverse();
  return fitList(newestFirst, (kept, omitted): JournalResult => ({
    entries: [...kept].reverse(),
    omitted,
    ...(warning ? { warning: toDisplay(warning, 300) } : {}),
  }));
}

function toEntry(line: string): JournalEntry | null {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
    record = parsed as Record<string, unknown>;
  } catch {
    return null;
  }
  const micros = field(record.__REALTIME_TIMESTAMP);
  if (micros === null || !/^\d{1,19}$/.test(micros)) return null;
  const time = new Date(Number(BigInt(micros) / 1000n));
  if (!Number.isFinite(time.getTime())) return null;
  const entry: JournalEntry = { time: time.toISOString(), message: "" };
  const priority = field(record.PRIORITY);
  if (priority !== null && /^[0-7]$/.test(priority)) entry.priority = Number(priority);
  const unit = field(record._SYSTEMD_UNIT);
  if (unit) entry.unit = toToken(unit, UNIT_NAME_MAX);
  const identifier = field(record.SYSLOG_IDENTIFIER);
  if (identifier) entry.identifier = toToken(identifier, 64);
  const pid = field(record._PID);
  if (pid !== null && /^\d{1,10}$/.test(pid) && Number(pid) < 2 ** 31) entry.pid = Number(pid);
  const message = field(record.MESSAGE);
  if (message === null) {
    entry.messageCut = true;
  } else {
    entry.message = toDisplay(message, JOURNAL_MESSAGE_MAX);
    if (message.length > JOURNAL_MESSAGE_MAX) entry.messageCut = true;
  }
  return entry;
}

/**
 * A journal field as text. journalctl writes a value as a string, as an array of byte values when it is not valid
 * UTF-8 (or holds control characters), as an array of such when the field occurs more than once (the first is
 * taken), and as null when it is too large.
 */
function field(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    if (value.length > 0 && value.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)) {
      return Buffer.from(value as number[]).toString("utf8");
    }
    return value.length > 0 ? field(value[0]) : null;
  }
  return null;
}
