import assert from "node:assert/strict";
import { NO_ENROLLMENT } from "../../src/enroll/disabled.js";
import { after, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { type CallToolResult, ElicitRequestSchema, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY } from "../../src/core/health.js";
import { Registry } from "../../src/core/registry.js";
import type { InvocationView, JobView } from "../../src/jobs/api.js";
import { createLogger } from "../../src/log.js";
import type { Manager } from "../../src/manager/manager.js";
import { ANSWER_MAX_CHARS } from "../../src/mcp/answer-budget.js";
import { CONFIRMATION_TTL_MS } from "../../src/mcp/confirmations.js";
import { createMcpServer, type FleetMcp } from "../../src/mcp/server.js";
import type { CatalogEntry } from "../../src/protocol/actions.js";
import type { z } from "zod";
import type { InvocationOut, JobOut } from "../../src/mcp/job-views.js";
import { FakeJobs } from "../helpers/fake-jobs.js";

// The action tools through the real tool code (McpServer and the SDK Client over the in-memory transport), against
// a small in-test JobService: what is under test is the tools (parsing, confirmation, progress, cancellation,
// paging within the answer budget), not the jobs, which have their own tests and the e2e tests with real workers.

const WORKERS = ["w1", "w2", "w3"];

const entry = (name: string, destructive: boolean, params: CatalogEntry["params"] = {}): CatalogEntry => ({
  name,
  kind: "command",
  description: `${name} for tests`,
  destructive,
  params,
  timeoutMs: 30_000,
  concurrency: 4,
});

const ACTIONS = [
  { entry: entry("uptime", false), definitionHash: "1111111111111111" },
  { entry: entry("restart_unit", true, { unit: { type: "string", required: true, maxLength: 64, allowLeadingDash: false } }), definitionHash: "2222222222222222" },
];

interface Harness {
  client: Client;
  mcp: FleetMcp;
  jobs: FakeJobs;
  clock: { now: number };
  elicited: string[];
}

const open: Harness[] = [];

function fakeManager(jobs: FakeJobs): Manager {
  return {
    registry: new Registry({ clock: new FakeClock(), policy: DEFAULT_POLICY }),
    joins: NO_ENROLLMENT,
    port: 0,
    fleet: "test",
    fleetId: "0123456789abcdef",
    workerAnnouncements: () => [],
    reloadCrl: async () => {},
    onEvent: () => () => {},
    request: (async () => {
      throw new Error("no workers here");
    }) as Manager["request"],
    connected: () => true,
    jobs,
    onCatalog: () => () => {},
    close: async () => {},
  };
}

/** A client, with elicitation if `answer` is given (it answers each elicitation/create). */
async function connect(opts: { answer?: ElicitResult; workers?: string[] } = {}): Promise<Harness> {
  const jobs = new FakeJobs(opts.workers ?? WORKERS, ACTIONS);
  const clock = { now: Date.UTC(2026, 0, 1) };
  const mcp = createMcpServer(fakeManager(jobs), { requestTimeoutMs: 1000, now: () => clock.now, log: createLogger({ name: "test", level: "silent" }) });
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
  await mcp.server.connect(serverSide);
  const elicited: string[] = [];
  const client = new Client({ name: "action-tools-test", version: "1.2.3" }, opts.answer ? { capabilities: { elicitation: {} } } : {});
  if (opts.answer) {
    const answer = opts.answer;
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicited.push(req.params.message);
      return answer;
    });
  }
  await client.connect(clientSide);
  const h = { client, mcp, jobs, clock, elicited };
  open.push(h);
  return h;
}

/** The fields these tests read from the tools' answers (each answer holds some of them). */
interface Data {
  job: z.infer<typeof JobOut>;
  jobs: Array<{ id: string }>;
  invocations: InvocationOut[];
  confirmation: { token: string; expiresAt: string; plan: unknown };
  nextCursor: string | null;
  output: { stdout: string; stderr: string; truncated: boolean };
  actions: Array<{ name: string; jobId: string; destructive: boolean; offeredBy: unknown; params: Record<string, unknown> }>;
  events: unknown[];
  total: number;
}

async function call(h: Harness, name: string, args: Record<string, unknown>): Promise<{ text: string; isError: boolean; data: Data }> {
  const r = (await h.client.callTool({ name, arguments: args })) as CallToolResult;
  const text = (r.content[0] as { text: string }).text;
  assert.ok(text.length <= ANSWER_MAX_CHARS, `${name}: ${text.length} characters`);
  return { text, isError: r.isError === true, data: (r.structuredContent ?? {}) as unknown as Data };
}

const restart = { action: "restart_unit", arguments: { unit: "nginx.service" }, target: { all: true } };

describe("the action tools (list_actions, run_action, get_job, cancel_job)", () => {
  after(async () => {
    for (const h of open) {
      await h.client.close();
      await h.mcp.close();
    }
  });

  it("tools/list holds the whole set under 32 KB, with the annotations each needs", async () => {
    const h = await connect();
    const listed = await h.client.listTools();
    const size = JSON.stringify(listed).length;
    assert.ok(size < 32 * 1024, `tools/list is ${size} characters`);
    const byName = new Map(listed.tools.map((t) => [t.name, t]));
    for (const name of ["list_actions", "get_job"]) assert.equal(byName.get(name)?.annotations?.readOnlyHint, true, name);
    assert.deepEqual(
      [byName.get("run_action")?.annotations?.readOnlyHint, byName.get("run_action")?.annotations?.destructiveHint, byName.get("run_action")?.annotations?.openWorldHint],
      [false, true, true],
    );
    assert.equal(byName.get("cancel_job")?.annotations?.readOnlyHint, false);
    for (const t of listed.tools) assert.ok(t.outputSchema, `${t.name} declares an output schema`);
  });

  it("list_actions shows each definition once with who offers it", async () => {
    const h = await connect();
    const { data } = await call(h, "list_actions", {});
    assert.equal(data.total, 2);
    const restartAction = data.actions.find((a) => a.name === "restart_unit")!;
    assert.deepEqual(restartAction.offeredBy, { count: 3, first: WORKERS });
    assert.equal(restartAction.destructive, true);
    assert.deepEqual(Object.keys(restartAction.params), ["unit"]);
  });

  it("refuses a target that is not exactly one of worker_id, worker_ids, label, all, and bad limits or timeouts, naming the parameter", async () => {
    const h = await connect();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ target: {} }, /^E_INVALID_ARGUMENT: target: must name exactly one of worker_id, worker_ids, label, all \(got none\)/],
      [{ target: { worker_id: "w1", label: "role=web" } }, /^E_INVALID_ARGUMENT: target: .*\(got worker_id, label\)/],
      [{ target: { worker_ids: [] } }, /^E_INVALID_ARGUMENT: target\.worker_ids: /],
      [{ target: { all: true }, max_concurrency: 0 }, /^E_INVALID_ARGUMENT: max_concurrency: /],
      [{ target: { all: true }, max_concurrency: "0%" }, /^E_INVALID_ARGUMENT: max_concurrency: /],
      [{ target: { all: true }, max_errors: "150%" }, /^E_INVALID_ARGUMENT: max_errors: .*at most 100%/],
      [{ target: { all: true }, max_errors: 1.5 }, /^E_INVALID_ARGUMENT: max_errors: /],
      [{ target: { all: true }, timeout: "30" }, /^E_INVALID_ARGUMENT: timeout: .*add a unit/],
      [{ target: { all: true }, timeout: "2h" }, /^E_INVALID_ARGUMENT: timeout: must be at most 1h/],
    ];
    for (const [args, expected] of cases) {
      const r = await call(h, "run_action", { action: "uptime", ...args });
      assert.equal(r.isError, true, JSON.stringify(args));
      assert.match(r.text, expected);
    }
    assert.equal(h.jobs.planned.length, 0, "nothing reached the planner");
    const ok = await call(h, "run_action", { action: "uptime", target: { all: true }, max_concurrency: "50%", max_errors: 2, timeout: "5s" });
    assert.equal(ok.isError, false, ok.text);
    assert.deepEqual([h.jobs.planned[0]!.maxConcurrency, h.jobs.planned[0]!.maxErrors, h.jobs.planned[0]!.timeoutMs], ["50%", 2, 5000]);
  });

  it("passes the plan's refusals through with their code, naming the parameter", async () => {
    const h = await connect();
    const bad = await call(h, "run_action", { action: "restart_unit", arguments: { unit: "-rf" }, target: { worker_id: "w1" } });
    assert.equal(bad.isError, true);
    assert.match(bad.text, /^E_INVALID_ARGUMENT: arguments\.unit: must not begin with "-"/);
    const unknown = await call(h, "run_action", { action: "nope", target: { all: true } });
    assert.match(unknown.text, /^E_UNKNOWN_ACTION: /);
    h.jobs.planAnswer = { code: "E_NO_TARGETS", message: "no worker with label role=db offers uptime" };
    assert.match((await call(h, "run_action", { action: "uptime", target: { label: "role=db" } })).text, /^E_NO_TARGETS: no worker/);
    assert.equal(h.jobs.started.length, 0);
  });

  it("a read-only action runs at once, and the answer is the job with every invocation and the client that asked", async () => {
    const h = await connect();
    const { data, isError, text } = await call(h, "run_action", { action: "uptime", target: { all: true } });
    assert.equal(isError, false, text);
    assert.equal(data.job.status, "succeeded");
    assert.equal(data.job.counts.succeeded, 3);
    assert.deepEqual(data.job.client, { name: "action-tools-test", version: "1.2.3" });
    assert.deepEqual(data.invocations.map((v) => [v.worker, v.status, v.exitCode]), WORKERS.map((w) => [w, "succeeded", 0]));
    assert.equal(data.nextCursor, null);
    assert.deepEqual(h.jobs.started[0]!.client, { name: "action-tools-test", version: "1.2.3" });
  });

  it("without elicitation a destructive action answers with the plan and a token, and runs only when confirmed with it, once", async () => {
    const h = await connect();
    const first = await call(h, "run_action", restart);
    assert.equal(first.isError, false, first.text);
    assert.deepEqual(Object.keys(first.data), ["confirmation"]);
    const { token, plan, expiresAt } = first.data.confirmation;
    assert.deepEqual(plan, { action: "restart_unit", arguments: { unit: "nginx.service" }, destructive: true, targets: { count: 3, first: WORKERS } });
    assert.equal(Date.parse(expiresAt), h.clock.now + CONFIRMATION_TTL_MS);
    assert.equal(h.jobs.started.length, 0, "nothing ran");

    const run = await call(h, "run_action", { ...restart, confirm: token });
    assert.equal(run.isError, false, run.text);
    assert.equal(run.data.job.status, "succeeded");
    assert.equal(h.jobs.started.length, 1);

    const again = await call(h, "run_action", { ...restart, confirm: token });
    assert.equal(again.isError, true);
    assert.match(again.text, /^E_CONFIRMATION: this token was used already; nothing ran/);
    assert.equal(h.jobs.started.length, 1);
  });

  it("refuses an expired token and one for another plan, and answers an unknown one with a new plan", async () => {
    const h = await connect();
    const token = (await call(h, "run_action", restart)).data.confirmation.token as string;
    const other = await call(h, "run_action", { ...restart, arguments: { unit: "sshd.service" }, confirm: token });
    assert.match(other.text, /^E_CONFIRMATION: this token confirms another plan/);
    const fewer = await call(h, "run_action", { ...restart, target: { worker_ids: ["w1", "w2"] }, confirm: token });
    assert.match(fewer.text, /^E_CONFIRMATION: this token confirms another plan/);
    h.clock.now += CONFIRMATION_TTL_MS;
    const late = await call(h, "run_action", { ...restart, confirm: token });
    assert.match(late.text, /^E_CONFIRMATION: this token has expired/);
    const unknown = await call(h, "run_action", { ...restart, confirm: "not-a-token" });
    assert.equal(unknown.isError, false);
    assert.ok(unknown.data.confirmation.token);
    assert.equal(h.jobs.started.length, 0, "nothing ran");
  });

  it("with elicitation, the user is asked, naming the action, its arguments and the targets; accept runs it", async () => {
    const h = await connect({ answer: { action: "accept", content: { confirm: true } } });
    const r = await call(h, "run_action", restart);
    assert.equal(r.isError, false, r.text);
    assert.equal(r.data.job.status, "succeeded");
    assert.equal(h.elicited.length, 1);
    assert.match(h.elicited[0]!, /"restart_unit".*\{"unit":"nginx\.service"\}.*3 workers: w1, w2, w3/);
  });

  it("with elicitation, decline or cancel runs nothing, and the answer says so", async () => {
    for (const action of ["decline", "cancel"] as const) {
      const h = await connect({ answer: { action } });
      const r = await call(h, "run_action", restart);
      assert.equal(r.isError, true);
      assert.match(r.text, /^E_DECLINED: .*nothing ran/);
      assert.equal(h.jobs.started.length, 0);
    }
    const readOnly = await connect({ answer: { action: "decline" } });
    assert.equal((await call(readOnly, "run_action", { action: "uptime", target: { all: true } })).data.job.status, "succeeded");
    assert.equal(readOnly.elicited.length, 0, "a read-only action is not confirmed");
  });

  it("sends one progress notification per finished invocation, with the finished count and the total", async () => {
    const h = await connect();
    h.jobs.autoFinishMs = 30;
    const progress: Array<{ progress: number; total?: number; message?: string }> = [];
    const r = (await h.client.callTool({ name: "run_action", arguments: { action: "uptime", target: { all: true } } }, undefined, {
      onprogress: (p) => progress.push(p),
    })) as CallToolResult;
    assert.notEqual(r.isError, true);
    assert.deepEqual(progress, WORKERS.map((w, i) => ({ progress: i + 1, total: 3, message: `${w} succeeded` })));
  });

  it("waits for the job to end, and counts its invocations by status", async () => {
    const h = await connect();
    h.jobs.autoFinish = null;
    const pending = call(h, "run_action", { action: "uptime", target: { all: true } });
    await until(() => h.jobs.started.length === 1);
    const id = [...h.jobs.jobs.keys()][0]!;
    h.jobs.finish(id, "w1", "succeeded");
    h.jobs.finish(id, "w2", "failed", { exitCode: 3 });
    h.jobs.finish(id, "w3", "timed_out");
    const r = await pending;
    assert.deepEqual([r.data.job.counts.succeeded, r.data.job.counts.failed, r.data.job.counts.timed_out], [1, 1, 1]);
    assert.equal(r.data.job.status, "failed");
  });

  it("MCP cancellation of run_action cancels the job", async () => {
    const h = await connect();
    h.jobs.autoFinish = null;
    const abort = new AbortController();
    const pending = h.client.callTool({ name: "run_action", arguments: { action: "uptime", target: { all: true } } }, undefined, { signal: abort.signal });
    await until(() => h.jobs.started.length === 1);
    abort.abort();
    await assert.rejects(pending);
    await until(() => h.jobs.cancelled.length === 1);
    const job = h.jobs.get(h.jobs.cancelled[0]!)!;
    assert.equal(job.status, "cancelled");
  });

  it("cancel_job stops a running job and answers when it has stopped; an unknown or ended job is refused", async () => {
    const h = await connect();
    h.jobs.autoFinish = null;
    const plan = h.jobs.plan({ action: "uptime", arguments: {}, target: { all: true } });
    assert.ok(!("code" in plan));
    const job = h.jobs.start(plan, { name: "x", version: "1" });
    const r = await call(h, "cancel_job", { job_id: job.id });
    assert.equal(r.isError, false, r.text);
    assert.equal(r.data.job.status, "cancelled");
    assert.deepEqual(h.jobs.cancelled, [job.id]);
    assert.match((await call(h, "cancel_job", { job_id: job.id })).text, /^E_NOT_RUNNING: job job-1 has ended \(cancelled\)/);
    assert.match((await call(h, "cancel_job", { job_id: "job-99" })).text, /^E_UNKNOWN_JOB: /);
  });

  it("get_job pages 10,000 invocations within the budget, each once", async () => {
    const h = await connect();
    const job = bigJob(10_000, "uptime: 12 days, load average: 0.52, 0.61, 0.58\n".repeat(8));
    h.jobs.add(job);
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await call(h, "get_job", { job_id: job.id, ...(cursor ? { cursor } : {}) });
      assert.equal(r.isError, false, r.text.slice(0, 300));
      for (const v of r.data.invocations as InvocationView[]) {
        assert.ok(!seen.has(v.worker), `${v.worker} twice`);
        seen.add(v.worker);
      }
      assert.equal(r.data.job.targets, 10_000);
      cursor = r.data.nextCursor;
      pages++;
    } while (cursor && pages < 10_000);
    assert.equal(seen.size, 10_000);
    assert.match((await call(h, "get_job", { job_id: job.id, cursor: "bogus" })).text, /^E_INVALID_ARGUMENT: cursor: /);
    assert.match((await call(h, "get_job", { job_id: "nope" })).text, /^E_UNKNOWN_JOB: /);
  });

  it("a worker's worst output (4 KiB tails of control bytes, a large result) and the longest arguments still fit a page", async () => {
    const h = await connect();
    const job = { ...bigJob(300, "\u0001".repeat(4096)), arguments: { text: "\"".repeat(8000) } };
    h.jobs.add(job);
    const first = await call(h, "get_job", { job_id: job.id });
    const rows = first.data.invocations as Array<InvocationView & { structuredOmitted?: boolean }>;
    assert.ok(rows.length >= 1 && first.data.nextCursor);
    assert.ok(JSON.stringify(rows[0]!.stdout.tail).length <= 6000 && rows[0]!.stdout.truncated, "the tail is cut to its JSON cap, marked truncated");
    assert.equal(rows[0]!.structuredOmitted, true, "a large result is left out of the list");
    const second = await call(h, "get_job", { job_id: job.id, cursor: first.data.nextCursor });
    assert.equal((second.data.invocations as InvocationView[])[0]!.worker, job.invocations[rows.length]!.worker);
  });

  it("get_job {job_id, worker_id} returns the whole kept output (1 MiB) page by page, each within the budget", async () => {
    const h = await connect();
    const job = bigJob(2);
    h.jobs.add(job);
    // Every kind of character JSON escapes, and surrogate pairs that must not be split between pages.
    const unit = 'line "quoted" \\ tab\t nul\u0000 bell\u0007 emoji 😀 é\n';
    const stdout = unit.repeat(Math.ceil((1024 * 1024) / unit.length)).slice(0, 1024 * 1024 - 1) + "😀";
    const stderr = "warning: x\n".repeat(5000);
    h.jobs.outputs.set(`${job.id}/${job.invocations[0]!.worker}`, { stdout, stderr, truncated: true });
    let out = "";
    let err = "";
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await call(h, "get_job", { job_id: job.id, worker_id: job.invocations[0]!.worker, ...(cursor ? { cursor } : {}) });
      assert.equal(r.isError, false, r.text.slice(0, 300));
      assert.equal(r.data.output.truncated, true);
      out += r.data.output.stdout;
      err += r.data.output.stderr;
      cursor = r.data.nextCursor;
      pages++;
    } while (cursor && pages < 1000);
    assert.equal(out, stdout);
    assert.equal(err, stderr);
    assert.ok(pages > 20, `${pages} pages`);
    assert.match((await call(h, "get_job", { job_id: job.id, worker_id: "elsewhere" })).text, /^E_UNKNOWN_WORKER: /);
    assert.match((await call(h, "get_job", { worker_id: "w1" })).text, /^E_INVALID_ARGUMENT: worker_id: needs job_id/);
  });

  it("get_job without job_id pages the recent jobs, newest first", async () => {
    const h = await connect();
    for (let i = 0; i < 120; i++) h.jobs.add({ ...bigJob(1), id: `old-${i}`, arguments: { text: "a".repeat(2000) } });
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await call(h, "get_job", cursor ? { cursor } : {});
      ids.push(...(r.data.jobs as Array<{ id: string }>).map((j) => j.id));
      cursor = r.data.nextCursor;
      pages++;
    } while (cursor && pages < 100);
    assert.deepEqual(ids, Array.from({ length: 120 }, (_, i) => `old-${119 - i}`));
  });

  it("get_worker_events lists action outcomes apart from health events, under their own bound", async () => {
    const h = await connect();
    for (let i = 0; i < 30; i++) h.jobs.events.push({ at: new Date().toISOString(), worker: "w1", jobId: `j${i}`, action: "uptime", status: "succeeded" });
    const r = await call(h, "get_worker_events", {});
    assert.equal(r.isError, false, r.text);
    assert.deepEqual(r.data.events, []);
    assert.equal(r.data.actions.length, 20);
    assert.equal(r.data.actions[0]!.jobId, "j0");
  });
});

/** A finished job of `n` invocations with the longest worker ids, each with `tail` on both streams and a large result. */
function bigJob(n: number, tail = "ok\n"): JobView {
  const counts = { pending: 0, running: 0, succeeded: n, failed: 0, timed_out: 0, cancelled: 0, undeliverable: 0, lost: 0, skipped: 0 };
  return {
    id: "big",
    action: "uptime",
    arguments: {},
    status: "succeeded",
    client: { name: "c", version: "1" },
    createdAt: new Date(0).toISOString(),
    endedAt: new Date(1).toISOString(),
    targets: n,
    counts,
    target: { all: true },
    maxConcurrency: 1000,
    maxErrors: 0,
    timeoutMs: 60_000,
    invocations: Array.from({ length: n }, (_, i) => ({
      worker: `${"w".repeat(57)}-${String(i).padStart(5, "0")}`,
      status: "succeeded" as const,
      exitCode: 0,
      signal: null,
      durationMs: 12,
      startedAt: new Date(0).toISOString(),
      endedAt: new Date(12).toISOString(),
      stdout: { tail, bytes: 5 * 1024 * 1024, truncated: true },
      stderr: { tail, bytes: tail.length, truncated: false },
      structured: { rows: Array.from({ length: 100 }, (_, j) => ({ pid: j, command: "c".repeat(200) })) },
    })),
  };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
