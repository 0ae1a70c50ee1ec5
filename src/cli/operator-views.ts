import { z } from "zod";
import { formatDuration } from "../config/duration.js";
import { HEALTH_STATES, type HealthState } from "../core/health.js";
import { InvocationOut, JobOut, JobSummaryOut } from "../mcp/job-views.js";
import { Counts, EventOut, FleetSummaryOutput, ListWorkersOutput, type WorkerRow } from "../mcp/schemas.js";
import { block, cell, fit, paint, table, type Cell, type Style, type Tint } from "./terminal-text.js";

// What the operator commands print: pure functions of the tools' structured results, so that every table and
// every exit code is decided here, tested without a manager. Every string a worker controls goes through `cell`.

/** Exit codes of the operator commands (README, "Operator CLI"). */
export const EXIT = {
  ok: 0,
  /** status, workers: some degraded, none unhealthy. run: some invocation did not succeed. */
  degraded: 1,
  failed: 1,
  unhealthy: 2,
  /** The manager could not be reached: refused, TLS refused, timed out, or gone mid-way. */
  unreachable: 3,
  /**
   * Bad usage or settings. The other commands exit 2 for those; here 2 means "some unhealthy", so these take
   * sysexits' EX_USAGE, which no health answer can be confused with.
   */
  usage: 64,
} as const;

/** status and workers: 2 if any is unhealthy, 1 if any is degraded, else 0 (offline workers stopped cleanly). */
export function healthExit(counts: Partial<Record<HealthState, number>>): number {
  if ((counts.unhealthy ?? 0) > 0) return EXIT.unhealthy;
  if ((counts.degraded ?? 0) > 0) return EXIT.degraded;
  return EXIT.ok;
}

/** run: 0 only when every target's invocation succeeded. */
export function jobExit(job: Pick<JobOut, "targets" | "counts">): number {
  return (job.counts.succeeded ?? 0) === job.targets ? EXIT.ok : EXIT.failed;
}

export type FleetSummary = z.infer<typeof FleetSummaryOutput>;
export type WorkerList = z.infer<typeof ListWorkersOutput>;
export type JobOut = z.infer<typeof JobOut>;
export type JobSummary = z.infer<typeof JobSummaryOut>;
export type Invocation = z.infer<typeof InvocationOut>;
export type Event = z.infer<typeof EventOut>;

export const STATE_TINT: Record<HealthState, Tint> = { healthy: "green", degraded: "yellow", unhealthy: "red", offline: "grey" };

const STATUS_TINT: Record<string, Tint> = {
  succeeded: "green",
  running: "yellow",
  pending: "grey",
  failed: "red",
  timed_out: "red",
  undeliverable: "red",
  cancelled: "grey",
};

const stateCell = (state: HealthState): Cell => ({ text: state, tint: STATE_TINT[state] });
const statusCell = (status: string): Cell => ({ text: status, tint: STATUS_TINT[status] });
const age = (ms: number | null) => (ms === null ? "-" : formatDuration(ms));
const labelsText = (labels: Record<string, string>, more = 0) =>
  fit(cell(Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",")), 60) + (more > 0 ? ` +${more}` : "");
/** ISO time to the second, as a log reads. */
const when = (iso: string | null) => (iso === null ? "-" : iso.replace(/\.\d{3}Z$/, "Z"));

/** `3 workers: 2 healthy, 0 degraded, 1 unhealthy, 0 offline`, each state in its colour. */
export function countsLine(counts: z.infer<typeof Counts>, style: Style): string {
  const parts = HEALTH_STATES.map((s) => {
    const n = counts[s] ?? 0;
    return n > 0 ? paint(style, STATE_TINT[s], `${n} ${s}`) : `${n} ${s}`;
  });
  const total = counts.total ?? 0;
  return `${total} worker${total === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

/** The worker rows as a table: id, state, reasons, connected, heartbeat age, labels. */
export function workersTable(rows: WorkerRow[], style: Style): string {
  return table(
    ["WORKER", "STATE", "REASONS", "CONNECTED", "HEARTBEAT", "LABELS"],
    rows.map((w) => [
      cell(w.id),
      stateCell(w.state),
      fit(cell(w.reasons.join(",")), 40) || "-",
      w.connected ? "yes" : "no",
      age(w.lastHeartbeatAgeMs),
      labelsText(w.labels, w.moreLabels) || "-",
    ]),
    style,
  );
}

/** What `status` shows: the three tools' answers it is made of. */
export interface StatusData {
  summary: FleetSummary;
  unhealthy: WorkerList;
  degraded: WorkerList;
}

/** `status`: the counts, then the problem workers (unhealthy first), or a line saying there are none. */
export function statusView(data: StatusData, style: Style): string {
  const { counts, connected } = data.summary;
  const lines = [`${countsLine(counts, style)}; ${connected} connected`];
  const problems = [...data.unhealthy.workers, ...data.degraded.workers];
  if (problems.length === 0) {
    lines.push("", (counts.total ?? 0) === 0 ? "no workers yet" : "no problem workers");
    return lines.join("\n");
  }
  lines.push("", workersTable(problems, style));
  const hidden = data.unhealthy.total - data.unhealthy.workers.length + (data.degraded.total - data.degraded.workers.length);
  if (hidden > 0) lines.push(`… and ${hidden} more (mcp-fleet workers --state unhealthy|degraded)`);
  return lines.join("\n");
}

/** `events`: one row per transition, oldest first. */
export function eventsTable(events: Event[], style: Style): string {
  return table(
    ["TIME", "WORKER", "FROM", "TO", "WHY"],
    events.map((e) => [
      when(e.at),
      cell(e.worker),
      e.from ?? "-",
      stateCell(e.to),
      fit(cell(e.reasons.map((r) => r.message).join("; ")), 100) || "-",
    ]),
    style,
  );
}

/** One transition on one line, for `events --follow`, which cannot know the widths of rows yet to come. */
export function eventLine(e: Event, style: Style): string {
  const why = cell(e.reasons.map((r) => r.message).join("; "));
  const to = paint(style, STATE_TINT[e.to], e.to);
  return `${when(e.at)}  ${cell(e.worker)}  ${e.from ?? "(new)"} -> ${to}${why ? `  ${fit(why, 160)}` : ""}`;
}

const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(", ") || "-";

/** `jobs`: the recent jobs, newest first. */
export function jobsTable(jobs: JobSummary[], style: Style): string {
  return table(
    ["JOB", "ACTION", "STATUS", "TARGETS", "INVOCATIONS", "BY", "CREATED"],
    jobs.map((j) => [
      j.id,
      cell(j.action),
      statusCell(j.status),
      String(j.targets),
      countsText(j.counts),
      cell(j.client.operator ?? j.client.name),
      when(j.createdAt),
    ]),
    style,
  );
}

/** How many lines of each invocation's stdout and stderr a job's view shows. */
const TAIL_LINES = 10;
/** How much of a structured result a job's view shows; `--json` has all of it. */
const RESULT_CHARS = 300;

const lastLines = (text: string, n: number) => {
  const lines = block(text).replace(/\n$/, "").split("\n");
  return lines.length > n ? ["…", ...lines.slice(-n)] : lines;
};

/** One job: its head, a row per invocation, then the last lines of what each printed. */
export function jobView(job: JobOut, invocations: Invocation[], style: Style): string {
  const who = job.client.operator !== undefined ? `operator ${cell(job.client.operator)} via ` : "";
  const lines = [
    `job ${job.id}: ${cell(job.action)} ${paint(style, STATUS_TINT[job.status], job.status)} on ${job.targets} worker${job.targets === 1 ? "" : "s"} (${countsText(job.counts)})`,
    `started ${when(job.createdAt)} by ${who}${cell(job.client.name)} ${cell(job.client.version)}; ended ${when(job.endedAt)}`,
    "",
    table(
      ["WORKER", "STATUS", "EXIT", "DURATION", "ERROR"],
      invocations.map((v) => [
        cell(v.worker),
        statusCell(v.status),
        v.exitCode === null ? (v.signal ?? "-") : String(v.exitCode),
        v.durationMs === null ? "-" : formatDuration(v.durationMs),
        cell(v.error ?? "") || "-",
      ]),
      style,
    ),
  ];
  for (const v of invocations) {
    if (v.structured !== undefined) {
      lines.push("", paint(style, "bold", `${cell(v.worker)} result:`), `  ${fit(cell(JSON.stringify(v.structured)), RESULT_CHARS)}`);
    }
    for (const [name, stream] of [["stdout", v.stdout], ["stderr", v.stderr]] as const) {
      if (stream.tail.length === 0) continue;
      lines.push("", paint(style, "bold", `${cell(v.worker)} ${name}${stream.truncated ? " (end)" : ""}:`), ...lastLines(stream.tail, TAIL_LINES).map((l) => `  ${l}`));
    }
  }
  return lines.join("\n");
}

/** A one-line progress bar: `[######------] 3/10 web-01 succeeded`, at most `columns` wide. */
export function progressLine(done: number, total: number, message: string, columns: number): string {
  const barWidth = 20;
  const filled = total > 0 ? Math.min(barWidth, Math.round((done / total) * barWidth)) : 0;
  const head = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}] ${done}/${total}`;
  const room = columns - head.length - 2;
  return room > 3 ? `${head}  ${fit(cell(message), room)}` : fit(head, Math.max(1, columns - 1));
}
