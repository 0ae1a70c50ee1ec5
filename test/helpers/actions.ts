import assert from "node:assert/strict";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { InvocationView, JobSummary, JobView, KeptOutput } from "../../src/jobs/api.js";
import { startWorker, type CertSet } from "./fleet.js";
import type { McpManager } from "./mcp-client.js";
import type { Proc } from "./processes.js";

/*
 * What the acting-on-the-fleet tests share: action files as a host's administrator writes them, the worker-hosted
 * MCP server fixture, answers of the job tools as the spec shapes them, and /proc, where "no process left" is
 * checked against the kernel rather than against what anyone reports.
 */

/** A command action file's content (spec: one action per *.json file in the actions dir). */
export interface ActionFile {
  name: string;
  description: string;
  argv: string[];
  params?: Record<string, Record<string, unknown>>;
  timeout?: string;
  destructive?: boolean;
  concurrency?: number;
}

/** Prints each argument as its own `<...>` line: one line per argv item shows how the program received them. */
export const SHOW_ARGS: ActionFile = {
  name: "show_args",
  description: "Print each argument on its own line between angle brackets",
  argv: ["/usr/bin/printf", "<%s>\\n", "fixed", "{text}"],
  params: { text: { type: "string", maxLength: 200 } },
  timeout: "10s",
  destructive: false,
};

/**
 * A shell the host's administrator wrote (the argument is `$0`, one argv item, never parsed as shell text) that
 * starts two sleeps: killing only the direct child would leave one behind, so the whole group must go.
 */
export const NAP: ActionFile = {
  name: "nap",
  description: "Sleep for the given seconds, in two processes of one group",
  argv: ["/bin/sh", "-c", '/bin/sleep "$0" & /bin/sleep "$0"; wait', "{seconds}"],
  params: { seconds: { type: "integer", minimum: 0, maximum: 600 } },
  timeout: "2m",
  destructive: false,
  concurrency: 4,
};

/** Touches a file below /tmp: the destructive action whose confirmation is tested. */
export const TOUCH_FILE: ActionFile = {
  name: "touch_file",
  description: "Create an empty file below /tmp",
  argv: ["/usr/bin/touch", "{path}"],
  params: { path: { type: "string", pattern: "/tmp/mcp-fleet-[A-Za-z0-9_./-]+", maxLength: 300 } },
  timeout: "10s",
};

export const BIG_OUTPUT_BYTES = 5 * 1024 * 1024;
export const BIG_OUTPUT_LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Prints exactly 5 MiB of printable lines. */
export const BIG_OUTPUT: ActionFile = {
  name: "big_output",
  description: "Print five mebibytes",
  argv: ["/bin/sh", "-c", `/usr/bin/yes ${BIG_OUTPUT_LINE} | /usr/bin/head -c ${BIG_OUTPUT_BYTES}`],
  timeout: "1m",
  destructive: false,
};

/**
 * The same name with a definition that differs per host: `succeeds` false on one of them. The catalogue entry
 * carries no argv (what runs is the host's business), so the failing one says so in its description too: that is
 * what makes it another definition for list_actions.
 */
export function probe(succeeds: boolean): ActionFile {
  return {
    name: "probe",
    description: succeeds ? "Check something on this host" : "Check something on this host (strictly: it fails here)",
    argv: [succeeds ? "/bin/true" : "/bin/false"],
    timeout: "10s",
    destructive: false,
  };
}

/**
 * A directory of action files as the spec wants it: owned by this uid, writable by nobody else (mkdtemp's 0700,
 * files 0644 whatever the umask).
 */
export function writeActionsDir(dir: string, actions: ActionFile[]): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const a of actions) {
    const file = join(dir, `${a.name}.json`);
    writeFileSync(file, JSON.stringify(a, null, 2));
    chmodSync(file, 0o644);
  }
  return dir;
}

/** The worker-hosted MCP server fixture (tools echo, touch, hang, crash, pid), run by node through tsx. */
export const MCP_FIXTURE = fileURLToPath(new URL("../fixtures/mcp-server.ts", import.meta.url));
const TSX_LOADER = import.meta.resolve("tsx");

/** An mcp-servers.json (Claude Desktop's `mcpServers` shape) with the fixture as server `fixture`. */
export function writeMcpServers(file: string, extra: Record<string, unknown> = {}): string {
  const config = {
    mcpServers: {
      fixture: { command: process.execPath, args: ["--import", TSX_LOADER, MCP_FIXTURE], ...extra },
    },
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  chmodSync(file, 0o644);
  return file;
}

/** A worker with its own actions dir and MCP servers file (a path that does not exist means none). */
export function startActionWorker(
  certs: CertSet,
  id: string,
  url: string,
  paths: { actionsDir: string; mcpServers: string },
  extra: string[] = [],
): Proc {
  return startWorker(certs, id, url, ["--actions-dir", paths.actionsDir, "--mcp-servers", paths.mcpServers, ...extra]);
}

// ---- the job tools' answers (spec, "Answer shapes") ----

export type Invocation = InvocationView;
export interface JobAnswer {
  job: Omit<JobView, "invocations" | "target">;
  invocations: Invocation[];
  nextCursor: string | null;
}
export interface ConfirmationAnswer {
  confirmation: {
    token: string;
    expiresAt: string;
    plan: { action: string; arguments: Record<string, unknown>; destructive: boolean; targets: { count: number; first: string[] } };
  };
}
export interface OutputAnswer {
  job: JobSummary;
  worker: string;
  output: KeptOutput;
  nextCursor: string | null;
}
export interface ActionsAnswer {
  actions: Array<{
    name: string;
    definitionHash: string;
    kind: string;
    description: string;
    destructive: boolean;
    params?: Record<string, unknown>;
    inputSchema?: Record<string, unknown>;
    timeoutMs: number;
    offeredBy: { count: number; first: string[] };
  }>;
  total: number;
}

export function text(r: CallToolResult): string {
  return (r.content[0] as { text: string }).text;
}

/** The structured answer of a call that must not be an error. */
export function answer<T>(r: CallToolResult, what = "call"): T {
  assert.notEqual(r.isError, true, `${what} failed: ${text(r)}`);
  return r.structuredContent as T;
}

/** Polls `get_job` until the job has ended (or `pred` holds); bounded. */
export async function waitForJob(mcp: McpManager, jobId: string, timeoutMs: number, pred: (a: JobAnswer) => boolean = (a) => a.job.status !== "running"): Promise<JobAnswer> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const a = await mcp.ok<JobAnswer>("get_job", { job_id: jobId });
    if (pred(a)) return a;
    if (performance.now() > deadline) throw new Error(`job ${jobId} not as expected within ${timeoutMs} ms: ${JSON.stringify(a.job)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The newest job's id, if any (get_job {} lists newest first; it pages, so counting its rows would not do). */
export async function newestJob(mcp: McpManager): Promise<string | undefined> {
  return (await mcp.ok<{ jobs: JobSummary[] }>("get_job")).jobs[0]?.id;
}

/** The newest job, once it is another than `previous` (and `pred` holds for it); bounded. */
export async function newJob(mcp: McpManager, previous: string | undefined, timeoutMs = 5000, pred: (j: JobSummary) => boolean = () => true): Promise<JobSummary> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const job = (await mcp.ok<{ jobs: JobSummary[] }>("get_job")).jobs[0];
    if (job && job.id !== previous && pred(job)) return job;
    if (performance.now() > deadline) throw new Error(`no new job within ${timeoutMs} ms (newest: ${JSON.stringify(job)})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** run_action that must start a job (no confirmation, no error); polls get_job until it has ended. */
export async function runJob(mcp: McpManager, args: Record<string, unknown>, timeoutMs = 30_000): Promise<JobAnswer> {
  const first = answer<JobAnswer & Partial<ConfirmationAnswer>>(await mcp.call("run_action", args), `run_action ${String(args.action)}`);
  assert.equal(first.confirmation, undefined, `${String(args.action)} asked for confirmation`);
  return first.job.status === "running" ? waitForJob(mcp, first.job.id, timeoutMs) : first;
}

/** Like runJob, for a client without elicitation: a destructive action is planned first, then run with its token. */
export async function runConfirmed(mcp: McpManager, args: Record<string, unknown>, timeoutMs = 30_000): Promise<JobAnswer> {
  const first = answer<JobAnswer & Partial<ConfirmationAnswer>>(await mcp.call("run_action", args), `run_action ${String(args.action)}`);
  if (!first.confirmation) return first.job.status === "running" ? waitForJob(mcp, first.job.id, timeoutMs) : first;
  return runJob(mcp, { ...args, confirm: first.confirmation.token }, timeoutMs);
}

export function byWorker(a: JobAnswer): Map<string, Invocation> {
  return new Map(a.invocations.map((i) => [i.worker, i]));
}

// ---- /proc ----

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  argv: string[];
}

/** Every process the kernel has now (those that vanish while being read are skipped). */
export function processTable(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // The command name in parentheses may hold spaces and parentheses: the fields after the last ")" are safe.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const state = rest[0];
      if (state === "Z") continue; // a zombie is already dead; only its parent has not reaped it yet
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").slice(0, -1);
      out.push({ pid: Number(name), ppid: Number(rest[1]), pgrp: Number(rest[2]), argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The processes descending from `root` (not itself). */
export function descendants(root: number, table = processTable()): ProcInfo[] {
  const found: ProcInfo[] = [];
  const parents = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of table) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/** The `/bin/sleep <seconds>` processes below `root`. */
export function sleepsUnder(root: number, seconds: number): ProcInfo[] {
  return descendants(root).filter((p) => p.argv[0] === "/bin/sleep" && p.argv[1] === String(seconds));
}

export function groupMembers(pgrp: number): ProcInfo[] {
  return processTable().filter((p) => p.pgrp === pgrp);
}

/** Polls until `fn` returns a value that is not undefined; bounded. */
export async function until<T>(fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, everyMs = 20): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Groups the test saw start; `after` kills whatever of them is left, so a failing test leaves no sleeper. */
export class Groups {
  private readonly seen = new Set<number>();

  add(pgrps: Iterable<number>): void {
    for (const g of pgrps) this.seen.add(g);
  }

  /** Only groups still made of the test's own sh and sleep: a group id of one long gone may be reused. */
  killAll(): void {
    for (const g of this.seen) {
      const members = groupMembers(g);
      if (members.length === 0 || !members.every((p) => p.argv[0] === "/bin/sh" || p.argv[0] === "/bin/sleep")) continue;
      try {
        process.kill(-g, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
}

/** Resident memory of a process in KiB, from /proc/<pid>/status. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, "VmRSS in /proc status");
  return Number(m[1]);
}
