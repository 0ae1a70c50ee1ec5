import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Option, type Command } from "commander";
import { z } from "zod";
import { loadConfig } from "../config/load.js";
import { HEALTH_STATES } from "../core/health.js";
import { GetJobOutput, InvocationOut, JobOut, JobSummaryOut, RunActionOutput } from "../mcp/job-views.js";
import { EventOut, EventsOutput, FleetSummaryOutput, ListWorkersOutput } from "../mcp/schemas.js";
import { allPages, callTool } from "./operator-calls.js";
import { out, operatorCommand } from "./operator-command.js";
import { connectionFields, managerUrl, openClient, type ConnectionSettings } from "./operator-connection.js";
import { eventLine, eventsTable, healthExit, jobsTable, jobView, statusView, workersTable, type Event, type StatusData } from "./operator-views.js";
import { styleFor } from "./terminal-text.js";
import { watchFleet } from "./watch.js";

const json = () => new Option("--json", "print the tools' structured results as JSON, for scripts");

/** Problem workers `status` lists per state: what fits a terminal beside the counts. */
function problemRows(): number {
  const rows = process.stdout.isTTY ? process.stdout.rows : undefined;
  return rows ? Math.max(3, Math.floor((rows - 8) / 2)) : 20;
}

async function statusData(client: Client, s: ConnectionSettings): Promise<{ data: StatusData; raw: Record<string, unknown> }> {
  const limit = problemRows();
  const [summary, unhealthy, degraded] = await Promise.all([
    callTool(client, s, "get_fleet_summary", {}, FleetSummaryOutput),
    callTool(client, s, "list_workers", { state: "unhealthy", limit }, ListWorkersOutput),
    callTool(client, s, "list_workers", { state: "degraded", limit }, ListWorkersOutput),
  ]);
  return {
    data: { summary: summary.data, unhealthy: unhealthy.data, degraded: degraded.data },
    raw: { summary: summary.raw, unhealthy: unhealthy.raw, degraded: degraded.raw },
  };
}

// ANSI: cursor home, clear the screen; the cursor hidden while watching, shown again at the end.
const HOME_CLEAR = "\x1b[H\x1b[2J";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";

export function statusCommand(): Command {
  return operatorCommand("status", "the fleet's health: counts by state and the problem workers (exit 0 healthy, 1 degraded, 2 unhealthy, 3 unreachable)", async (cmd) => {
    const o = loadConfig(z.object({ ...connectionFields, watch: z.boolean().optional(), json: z.boolean().optional() }), cmd);
    const style = styleFor(process.stdout);
    const client = await openClient(o);
    if (!o.watch) {
      const { data, raw } = await statusData(client, o);
      await out(o.json ? JSON.stringify(raw, null, 2) : statusView(data, style));
      await client.close();
      return healthExit(data.summary.counts);
    }
    const tty = process.stdout.isTTY === true && !o.json;
    const url = managerUrl(o.manager).href;
    let last = "";
    const draw = (body: string, footer: string) => {
      if (o.json) return void process.stdout.write(`${body}\n`);
      const text = `${body}\n\n${footer}`;
      process.stdout.write(tty ? `${HOME_CLEAR}${text}\n` : `${text}\n\n`);
    };
    if (tty) process.stdout.write(HIDE_CURSOR);
    const code = await watchFleet(client, o, {
      refresh: async (c) => {
        const { data, raw } = await statusData(c, o);
        last = o.json ? JSON.stringify(raw) : statusView(data, style);
        draw(last, `${url} at ${new Date().toLocaleTimeString()}; Ctrl-C to stop`);
      },
      lost: (why) => {
        if (o.json) return void console.error(`mcp-fleet: ${why}`);
        draw(last || "(no answer yet)", `${why}; retrying`);
      },
    });
    if (tty) process.stdout.write(SHOW_CURSOR);
    return code;
  })
    .addOption(new Option("--watch", "redraw whenever a worker's state changes, until Ctrl-C"))
    .addOption(json());
}

export function workersCommand(): Command {
  return operatorCommand("workers", "list the workers, problems first (all pages; exit codes as status, for the workers listed)", async (cmd) => {
    const o = loadConfig(z.object({ ...connectionFields, state: z.enum(HEALTH_STATES).optional(), label: z.string().min(1).optional(), json: z.boolean().optional() }), cmd);
    const client = await openClient(o);
    const args = { limit: 500, ...(o.state ? { state: o.state } : {}), ...(o.label ? { label: o.label } : {}) };
    const pages = await allPages(client, o, "list_workers", args, ListWorkersOutput);
    await client.close();
    const first = pages[0]!;
    const workers = pages.flatMap((p) => p.data.workers);
    if (o.json) {
      const { nextCursor: _n, ...head } = first.raw;
      await out(JSON.stringify({ ...head, workers: pages.flatMap((p) => p.raw.workers as unknown[]) }, null, 2));
    } else {
      await out(workers.length > 0 ? workersTable(workers, styleFor(process.stdout)) : "no workers match");
    }
    return healthExit(first.data.counts);
  })
    .addOption(new Option("--state <state>", "only workers in this state").choices(HEALTH_STATES))
    .addOption(new Option("--label <k=v>", 'only workers with this label ("key=value", or "key" for any value)'))
    .addOption(json());
}

/** Events after `afterSeq`, oldest first: the newest page, and older ones until they reach it (at most `maxPages`). */
async function eventsAfter(client: Client, s: ConnectionSettings, afterSeq: number, maxPages = 20): Promise<Event[]> {
  const found: Event[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const page = await callTool(client, s, "get_worker_events", cursor === undefined ? { limit: 100 } : { limit: 100, cursor }, EventsOutput);
    const events = page.data.events;
    found.unshift(...events.filter((e) => e.seq > afterSeq));
    if (page.data.nextCursor === null || events.length === 0 || events[0]!.seq <= afterSeq + 1) break;
    cursor = page.data.nextCursor;
  }
  return found;
}

export function eventsCommand(): Command {
  return operatorCommand("events", "the fleet's health transitions, newest last; --follow prints new ones as they happen", async (cmd) => {
    const o = loadConfig(z.object({ ...connectionFields, follow: z.boolean().optional(), json: z.boolean().optional(), worker: z.string().min(1).optional(), since: z.string().min(1).optional() }), cmd);
    const style = styleFor(process.stdout);
    const client = await openClient(o);
    const args = { ...(o.worker ? { worker_id: o.worker } : {}), ...(o.since ? { since: o.since } : {}) };
    const first = await callTool(client, o, "get_worker_events", args, EventsOutput);
    if (!o.follow) {
      await client.close();
      await out(o.json ? JSON.stringify(first.raw, null, 2) : first.data.events.length > 0 ? eventsTable(first.data.events, style) : "no events");
      return 0;
    }
    // Following: one line per event (one JSON object per line with --json), the ones already there first.
    const print = (events: Event[]) => {
      for (const e of events) process.stdout.write(`${o.json ? JSON.stringify(EventOut.parse(e)) : eventLine(e, style)}\n`);
    };
    const wanted = (e: Event) => o.worker === undefined || e.worker === o.worker;
    print(first.data.events);
    let lastSeq = first.data.events.at(-1)?.seq ?? 0;
    return watchFleet(client, o, {
      refresh: async (c) => {
        const fresh = await eventsAfter(c, o, lastSeq);
        if (fresh.length === 0) return;
        lastSeq = fresh.at(-1)!.seq;
        print(fresh.filter(wanted));
      },
      lost: (why) => console.error(`mcp-fleet: ${why}; retrying`),
    });
  })
    .addOption(new Option("--follow", "keep printing new transitions as the manager reports them, until Ctrl-C"))
    .addOption(new Option("--worker <id>", "only this worker's transitions"))
    .addOption(new Option("--since <time>", 'ISO time, or a duration back from now: "15m", "2h", "1d"'))
    .addOption(json());
}

export function jobsCommand(): Command {
  return operatorCommand("jobs", "the recent jobs, or one job with its invocations and the end of their output", async (cmd, [jobId]) => {
    const o = loadConfig(z.object({ ...connectionFields, json: z.boolean().optional() }), cmd);
    const style = styleFor(process.stdout);
    const client = await openClient(o);
    if (jobId === undefined) {
      const pages = await allPages(client, o, "get_job", {}, GetJobOutput, 20);
      await client.close();
      const raw = pages.flatMap((p) => (p.raw.jobs as unknown[] | undefined) ?? []);
      const jobs = z.array(JobSummaryOut).parse(raw);
      await out(o.json ? JSON.stringify({ jobs: raw }, null, 2) : jobs.length > 0 ? jobsTable(jobs, style) : "no jobs yet");
      return 0;
    }
    const job = await wholeJob(client, o, jobId);
    await client.close();
    await out(o.json ? JSON.stringify(job.raw, null, 2) : jobView(job.job, job.invocations, style));
    return 0;
  })
    .argument("[job_id]", "a job id from `mcp-fleet jobs` or `mcp-fleet run`")
    .addOption(json());
}

export interface WholeJob {
  job: z.infer<typeof JobOut>;
  invocations: Array<z.infer<typeof InvocationOut>>;
  /** As run_action answers a job, with every invocation: what `--json` prints. */
  raw: { job: unknown; invocations: unknown[] };
}

/** A job and all its invocations, from get_job's pages. */
export async function wholeJob(client: Client, s: ConnectionSettings, jobId: string): Promise<WholeJob> {
  const pages = await allPages(client, s, "get_job", { job_id: jobId }, RunActionOutput.extend({ nextCursor: RunActionOutput.shape.nextCursor.unwrap() }), 100);
  const rawInvocations = pages.flatMap((p) => (p.raw.invocations as unknown[] | undefined) ?? []);
  const last = pages.at(-1)!;
  return {
    job: JobOut.parse(last.data.job),
    invocations: z.array(InvocationOut).parse(rawInvocations),
    raw: { job: last.raw.job, invocations: rawInvocations },
  };
}
