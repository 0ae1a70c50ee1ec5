import { z } from "zod";
import { displayText, ErrorCode, Hostname, tokenText } from "./text.js";

/*
 * What each built-in diagnostic returns as its `structured` result. The worker builds these; the manager checks a
 * builtin's result against its schema before anyone reads it (a mismatch fails the invocation with E_BAD_RESPONSE).
 * Every string the host controls is held to a class and every list to a count; on top of that a whole result,
 * JSON-encoded, stays within DIAGNOSTIC_RESULT_MAX_BYTES, so the RunResult around it fits one frame. A list that
 * would not fit is cut (the items wanted least go first) and the result says how many were left out in `omitted`.
 *
 * A diagnostic that cannot answer returns no result: its invocation fails with an error code instead, UNAVAILABLE
 * when it cannot work on this host (systemd is not the init system, journalctl or systemctl is not installed, there
 * is no journal), EACCES when the agent's user may not read what it asks for (the journal, a directory), TIMEOUT,
 * COMMAND_FAILED, or ENOENT / ENOTDIR for disk_usage's path. What a diagnostic finds is a result, not a failure:
 * check_tcp's refused connection, resolve's unknown name.
 */

/** A diagnostic's result at most, as UTF-8 JSON: the rest of a RunResult (tails, times, sizes) has 20 KiB more. */
export const DIAGNOSTIC_RESULT_MAX_BYTES = 40 * 1024;

export function encodedBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), "utf8");
}

export const DIAGNOSTIC_NAMES = ["processes", "service_status", "journal", "disk_usage", "listening_ports", "check_tcp", "resolve"] as const;
export type DiagnosticName = (typeof DIAGNOSTIC_NAMES)[number];

// Bounds shared by the worker (which makes its results fit them) and these schemas.
export const PROCESS_LIMIT_MAX = 50;
export const PROCESS_NAME_MAX = 64;
export const PROCESS_COMMAND_MAX = 200;
export const UNIT_NAME_MAX = 256;
export const JOURNAL_LINES_MAX = 500;
export const JOURNAL_MESSAGE_MAX = 500;
export const DISK_USAGE_DEPTH_MAX = 3;
export const DISK_USAGE_LIMIT_MAX = 50;
export const DISK_PATH_MAX = 512;
export const LISTENING_PORTS_MAX = 256;
export const RESOLVE_ADDRESSES_MAX = 64;

const PID_MAX = 2 ** 31 - 1;
const count = (max: number) => z.number().int().min(0).max(max);
const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const pid = z.number().int().min(0).max(PID_MAX);
const omitted = count(1_000_000).describe("items left out so that the result fits one frame");

function bounded<S extends z.ZodRawShape>(shape: S, description: string) {
  return z
    .strictObject(shape)
    .refine((r) => encodedBytes(r) <= DIAGNOSTIC_RESULT_MAX_BYTES, `must encode to at most ${DIAGNOSTIC_RESULT_MAX_BYTES} bytes`)
    .describe(description);
}

const ProcessRow = z.strictObject({
  pid,
  ppid: pid.nullable(),
  user: tokenText(32),
  name: displayText(PROCESS_NAME_MAX),
  /** The command line, cut to PROCESS_COMMAND_MAX characters (ending in "…" when cut). */
  command: displayText(PROCESS_COMMAND_MAX),
  state: tokenText(16),
  /** Of all CPUs together, as systeminformation measures it. */
  cpuPercent: z.number().min(0).max(100_000),
  memoryPercent: z.number().min(0).max(100),
  rssBytes: bytes,
  startedAt: z.iso.datetime().nullable(),
});

const ProcessesResult = bounded(
  {
    sort: z.enum(["cpu", "memory"]),
    /** Processes on the host, of which the `limit` busiest are listed. */
    total: count(PID_MAX),
    processes: z.array(ProcessRow).max(PROCESS_LIMIT_MAX),
    omitted,
  },
  "The busiest processes by CPU or memory, busiest first.",
);

const ServiceStatusResult = bounded(
  {
    /** The unit's full name as systemd knows it (ssh becomes ssh.service). */
    unit: tokenText(UNIT_NAME_MAX),
    /** loaded, not-found, masked, ... */
    loadState: tokenText(32),
    /** active, inactive, failed, activating, ... */
    activeState: tokenText(32),
    subState: tokenText(32),
    unitFileState: tokenText(32).nullable(),
    description: displayText(256),
    mainPid: pid.nullable(),
    execMainStatus: z.number().int().min(-1024).max(1024).nullable(),
    /** success, exit-code, timeout, ... */
    result: tokenText(32).nullable(),
    restarts: count(PID_MAX).nullable(),
    memoryBytes: bytes.nullable(),
    /** As systemctl prints them (e.g. "Thu 2026-12-03 19:00:00 UTC"), in the host's time zone. */
    activeEnterTimestamp: displayText(64).nullable(),
    stateChangeTimestamp: displayText(64).nullable(),
    fragmentPath: tokenText(DISK_PATH_MAX).nullable(),
  },
  "A systemd unit's state from `systemctl show`. Fails with UNAVAILABLE where systemd is not the init system.",
);

const JournalEntry = z.strictObject({
  time: z.iso.datetime(),
  /** syslog priority: 0 emerg … 7 debug. */
  priority: z.number().int().min(0).max(7).optional(),
  unit: tokenText(UNIT_NAME_MAX).optional(),
  identifier: tokenText(64).optional(),
  pid: pid.optional(),
  /** The message, cut to JOURNAL_MESSAGE_MAX characters (ending in "…"); "" when the journal holds it as too large. */
  message: displayText(JOURNAL_MESSAGE_MAX),
  messageCut: z.literal(true).optional(),
});

const JournalResult = bounded(
  {
    /** Oldest first; the newest are kept when not all fit (`omitted` counts the older ones left out). */
    entries: z.array(JournalEntry).max(JOURNAL_LINES_MAX),
    omitted,
    /** The first line journalctl wrote on stderr, e.g. that this user cannot see other users' or the system's messages. */
    warning: displayText(300).optional(),
  },
  "The newest journal entries (journalctl -o json). Fails with UNAVAILABLE where there is no systemd journal, EACCES where the agent's user may not read it.",
);

const DiskDirectory = z.strictObject({
  /** Relative to the scanned path, characters outside the token class as %XX. */
  path: tokenText(DISK_PATH_MAX),
  /** The name was longer than DISK_PATH_MAX once escaped, and is cut. */
  pathCut: z.literal(true).optional(),
  depth: z.number().int().min(1).max(DISK_USAGE_DEPTH_MAX),
  /** Space allocated on disk (as du counts it), over the whole subtree scanned. */
  bytes,
  /** Sum of file sizes over the subtree scanned. */
  apparentBytes: bytes,
  files: count(Number.MAX_SAFE_INTEGER),
});

const DiskUsageResult = bounded(
  {
    /** The scanned path, symbolic links in it resolved. */
    path: tokenText(4096),
    total: z.strictObject({ bytes, apparentBytes: bytes, files: count(Number.MAX_SAFE_INTEGER), directories: count(Number.MAX_SAFE_INTEGER) }),
    /** The largest directories down to `depth` below the path, largest first. */
    directories: z.array(DiskDirectory).max(DISK_USAGE_LIMIT_MAX),
    omitted,
    /** Directory entries looked at. */
    scanned: count(Number.MAX_SAFE_INTEGER),
    /** The scan hit its time or entry bound: the sizes count only what was scanned. */
    stoppedEarly: z.boolean(),
    stopReason: z.enum(["time", "entries"]).optional(),
    /** Directories that could not be read (permissions), skipped. */
    unreadable: count(Number.MAX_SAFE_INTEGER),
    /** Mount points of other file systems below the path, not entered. */
    otherFilesystems: count(Number.MAX_SAFE_INTEGER),
  },
  "The largest directories below a path, by a scan bounded in time and entries, never following symbolic links or leaving the file system.",
);

const ListeningPort = z.strictObject({
  /** tcp or tcp6. */
  protocol: tokenText(8),
  address: tokenText(64),
  port: z.number().int().min(0).max(65535),
  /** Null when the socket belongs to another user (the agent is unprivileged). */
  pid: pid.nullable(),
  process: displayText(64).nullable(),
});

const ListeningPortsResult = bounded(
  {
    /** By port, then address. */
    ports: z.array(ListeningPort).max(LISTENING_PORTS_MAX),
    omitted,
  },
  "TCP sockets listening on this host.",
);

const CheckTcpResult = bounded(
  {
    host: tokenText(253),
    port: z.number().int().min(1).max(65535),
    reachable: z.boolean(),
    /** Time to a connection (name lookup included), or null when there was none. */
    latencyMs: z.number().min(0).max(60_000).nullable(),
    /** The address connected to, when connected. */
    address: tokenText(64).nullable(),
    /** Why not: ECONNREFUSED, TIMEOUT, ENOTFOUND, EHOSTUNREACH, ... */
    error: ErrorCode.nullable(),
  },
  "Whether this host can open a TCP connection to host:port.",
);

const ResolveResult = bounded(
  {
    name: Hostname,
    /** In the order the resolver gave them. */
    addresses: z.array(z.strictObject({ address: tokenText(64), family: z.union([z.literal(4), z.literal(6)]) })).max(RESOLVE_ADDRESSES_MAX),
    omitted,
    /** ENOTFOUND, EAI_AGAIN, TIMEOUT, ... (with no addresses). */
    error: ErrorCode.nullable(),
    durationMs: z.number().min(0).max(60_000),
  },
  "How this host resolves a name: the system resolver (getaddrinfo: /etc/hosts, DNS, ...), as its programs see it.",
);

export const DIAGNOSTIC_OUTPUTS: Record<DiagnosticName, z.ZodObject> = {
  processes: ProcessesResult,
  service_status: ServiceStatusResult,
  journal: JournalResult,
  disk_usage: DiskUsageResult,
  listening_ports: ListeningPortsResult,
  check_tcp: CheckTcpResult,
  resolve: ResolveResult,
};

/** The output schema of a built-in diagnostic by its name, or undefined for a name that is not one. */
export function diagnosticOutput(name: string): z.ZodObject | undefined {
  return Object.hasOwn(DIAGNOSTIC_OUTPUTS, name) ? DIAGNOSTIC_OUTPUTS[name as DiagnosticName] : undefined;
}

export type ProcessesResult = z.infer<typeof ProcessesResult>;
export type ServiceStatusResult = z.infer<typeof ServiceStatusResult>;
export type JournalResult = z.infer<typeof JournalResult>;
export type JournalEntry = z.infer<typeof JournalEntry>;
export type DiskUsageResult = z.infer<typeof DiskUsageResult>;
export type ListeningPortsResult = z.infer<typeof ListeningPortsResult>;
export type CheckTcpResult = z.infer<typeof CheckTcpResult>;
export type ResolveResult = z.infer<typeof ResolveResult>;
