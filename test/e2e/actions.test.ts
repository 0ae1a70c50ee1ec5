import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ElicitRequest, ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import type { JobSummary } from "../../src/jobs/api.js";
import { DIAGNOSTIC_OUTPUTS } from "../../src/protocol/diagnostics.js";
import {
  answer,
  byWorker,
  descendants,
  groupMembers,
  Groups,
  NAP,
  newJob,
  newestJob,
  probe,
  runConfirmed,
  runJob,
  SHOW_ARGS,
  startActionWorker,
  text,
  TOUCH_FILE,
  sleepsUnder,
  until,
  writeActionsDir,
  writeMcpServers,
  type ActionsAnswer,
  type ConfirmationAnswer,
  type JobAnswer,
} from "../helpers/actions.js";
import { BareManager } from "../helpers/bare-manager.js";
import { useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import type { LogLine, Proc } from "../helpers/processes.js";

/*
 * Acting on the fleet, end to end: three real workers whose hosts define different actions (one also hosts the
 * MCP server fixture), a real manager, the SDK's client. The catalogue, read-only diagnostics, arguments that try
 * to be shell, confirmation with and without elicitation, worker-hosted MCP tools, and a manager restart.
 * Timeouts, cancellation, limits and big output are in actions-jobs.test.ts.
 */

const IDS = ["a1", "a2", "a3"];
const HOST_UPTIME = {
  name: "host_uptime",
  description: "Print /proc/uptime",
  argv: ["/bin/cat", "/proc/uptime"],
  timeout: "5s",
  destructive: false,
};

describe("acting on the fleet: catalogue, diagnostics, arguments, confirmation, MCP servers, restart", () => {
  const fx = useCerts("actions", [...IDS, "a4"], { before, after });
  let mcp: McpManager;
  const workers = new Map<string, Proc>();
  const firstLines: LogLine[] = [];
  const tag = `${process.pid}-${Date.now()}`;
  const tmpFiles: string[] = [];
  const tmpPath = (what: string) => {
    const p = `/tmp/mcp-fleet-${what}-${tag}`;
    tmpFiles.push(p);
    return p;
  };
  let elicit: (r: ElicitRequest["params"]) => ElicitResult = () => ({ action: "decline" });
  const elicited: Array<ElicitRequest["params"]> = [];
  const groups = new Groups();

  before(async () => {
    mcp = await McpManager.start(fx.certs);
    const files = {
      a1: [SHOW_ARGS, TOUCH_FILE, probe(false), HOST_UPTIME],
      a2: [SHOW_ARGS, TOUCH_FILE, probe(true)],
      a3: [SHOW_ARGS, probe(true)],
    };
    for (const id of IDS) {
      const actionsDir = writeActionsDir(join(fx.dir, `actions-${id}`), files[id as keyof typeof files]);
      const mcpServers = id === "a1" ? writeMcpServers(join(fx.dir, "mcp-servers-a1.json")) : join(fx.dir, "no-such-mcp-servers.json");
      workers.set(id, startActionWorker(fx.certs, id, mcp.url, { actionsDir, mcpServers }));
    }
    for (const id of IDS) await mcp.waitForWorker(id, (w) => w.connected, 15_000);
    // The catalogue is fetched after hello, and the MCP server's tools once it has listed them.
    await until(async () => {
      const { actions } = await mcp.ok<ActionsAnswer>("list_actions");
      const show = actions.find((a) => a.name === "show_args");
      return show?.offeredBy.count === 3 && actions.some((a) => a.name === "fixture.echo") ? true : undefined;
    }, 15_000, "every catalogue at the manager");
  });
  after(() => {
    groups.killAll();
    mcp?.kill();
    for (const f of tmpFiles) rmSync(f, { force: true });
  });

  it("list_actions: identical definitions once, with who offers them; different ones apart", async () => {
    const r = await mcp.ok<ActionsAnswer>("list_actions");
    assert.equal(r.total, r.actions.length);
    const named = (n: string) => r.actions.filter((a) => a.name === n);
    const offered = (n: string) => named(n).map((a) => a.offeredBy).sort((x, y) => x.count - y.count);

    assert.deepEqual(offered("show_args"), [{ count: 3, first: ["a1", "a2", "a3"] }]);
    assert.deepEqual(offered("touch_file"), [{ count: 2, first: ["a1", "a2"] }]);
    assert.deepEqual(offered("probe"), [{ count: 1, first: ["a1"] }, { count: 2, first: ["a2", "a3"] }], "two definitions of probe");
    assert.notEqual(named("probe")[0]!.definitionHash, named("probe")[1]!.definitionHash);
    assert.deepEqual(offered("host_uptime"), [{ count: 1, first: ["a1"] }]);
    for (const b of ["processes", "service_status", "journal", "disk_usage", "listening_ports", "check_tcp", "resolve"]) {
      const [entry, ...more] = named(b);
      assert.ok(entry, `built-in ${b} listed`);
      assert.equal(more.length, 0, `${b}: one definition`);
      assert.deepEqual([entry.kind, entry.destructive, entry.offeredBy.count], ["builtin", false, 3], b);
    }

    const show = named("show_args")[0]!;
    assert.deepEqual(
      [show.kind, show.description, show.destructive, show.timeoutMs],
      ["command", SHOW_ARGS.description, false, 10_000],
    );
    assert.equal((show.params as { text: { type: string } }).text.type, "string");
    assert.equal(named("touch_file")[0]!.destructive, true, "destructive is the default");

    const fixture = r.actions.filter((a) => a.name.startsWith("fixture."));
    assert.deepEqual(fixture.map((a) => a.name).sort(), ["fixture.crash", "fixture.echo", "fixture.fail", "fixture.hang", "fixture.pid", "fixture.touch"]);
    for (const a of fixture) {
      assert.equal(a.kind, "mcp");
      assert.ok(a.inputSchema, `${a.name} carries its input schema`);
      assert.deepEqual(a.offeredBy, { count: 1, first: ["a1"] });
      assert.equal(a.destructive, !["fixture.echo", "fixture.pid", "fixture.fail"].includes(a.name), `${a.name}: destructive unless readOnlyHint`);
    }

    const onA3 = await mcp.ok<ActionsAnswer>("list_actions", { worker_id: "a3" });
    assert.equal(onA3.actions.find((a) => a.name === "touch_file"), undefined);
    assert.equal(onA3.actions.find((a) => a.name.startsWith("fixture.")), undefined);
    assert.deepEqual(onA3.actions.filter((a) => a.name === "probe").map((a) => a.offeredBy), [{ count: 1, first: ["a3"] }]);
  });

  it("processes on three workers: each result matches its output schema; one progress notification per finished worker", async () => {
    const progress: Array<{ progress: number; total?: number }> = [];
    const r = await mcp.client.callTool(
      { name: "run_action", arguments: { action: "processes", arguments: { sort: "memory", limit: 5 }, target: { worker_ids: IDS } } },
      undefined,
      { onprogress: (p) => progress.push({ progress: p.progress, total: p.total }) },
    );
    const a = answer<JobAnswer>(r as never, "processes");
    assert.equal(a.job.status, "succeeded");
    assert.equal(a.job.counts.succeeded, 3);
    assert.deepEqual(a.invocations.map((i) => i.worker), IDS);
    for (const inv of a.invocations) {
      assert.equal(inv.status, "succeeded", `${inv.worker}: ${inv.error}`);
      const parsed = DIAGNOSTIC_OUTPUTS.processes!.safeParse(inv.structured);
      assert.ok(parsed.success, `${inv.worker}: ${JSON.stringify(parsed.error?.issues ?? []).slice(0, 500)}`);
    }
    assert.deepEqual(progress, [{ progress: 1, total: 3 }, { progress: 2, total: 3 }, { progress: 3, total: 3 }]);
  });

  it("shell in an argument reaches the program as one literal argv item, and nothing else runs", async () => {
    for (const [what, make] of [["semicolon", (f: string) => `; touch ${f}`], ["subst", (f: string) => `$(touch ${f})`], ["backtick", (f: string) => `\`touch ${f}\` && touch ${f}`]] as const) {
      const pwned = `/tmp/pwned-${what}-${tag}`;
      tmpFiles.push(pwned);
      const arg = make(pwned);
      const a = await runJob(mcp, { action: "show_args", arguments: { text: arg }, target: { all: true } });
      assert.equal(a.job.counts.succeeded, 3, JSON.stringify(a.job.counts));
      for (const inv of a.invocations) {
        assert.equal(inv.stdout.tail, `<fixed>\n<${arg}>\n`, `${inv.worker}: printf saw two argv items, the second the whole text`);
        assert.deepEqual([inv.exitCode, inv.stdout.bytes, inv.stdout.truncated], [0, Buffer.byteLength(`<fixed>\n<${arg}>\n`), false]);
      }
      assert.equal(existsSync(pwned), false, `${pwned} was never created`);
    }
  });

  it("an argument failing its parameter's schema, an unknown parameter or action: refused before anything is sent, naming it", async () => {
    const before = await newestJob(mcp);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ action: "show_args", arguments: { text: "x".repeat(201) }, target: { all: true } }, /^E_INVALID_ARGUMENT\b.*\btext\b.*200/s],
      [{ action: "show_args", arguments: { text: "-n" }, target: { all: true } }, /^E_INVALID_ARGUMENT\b.*\btext\b/s],
      [{ action: "show_args", arguments: { text: 42 }, target: { all: true } }, /^E_INVALID_ARGUMENT\b.*\btext\b.*string/s],
      [{ action: "show_args", arguments: { txt: "hi" }, target: { all: true } }, /^E_INVALID_ARGUMENT\b.*\btxt\b/s],
      [{ action: "processes", arguments: { limit: 51 }, target: { worker_id: "a1" } }, /^E_INVALID_ARGUMENT\b.*\blimit\b/s],
      [{ action: "touch_file", arguments: { path: "/etc/passwd" }, target: { worker_id: "a1" } }, /^E_INVALID_ARGUMENT\b.*\bpath\b/s],
      [{ action: "rm_everything", target: { all: true } }, /^E_UNKNOWN_ACTION\b/],
    ];
    for (const [args, expected] of cases) {
      const r = await mcp.call("run_action", args);
      assert.equal(r.isError, true, JSON.stringify(args));
      assert.match(text(r), expected);
    }
    assert.equal(await newestJob(mcp), before, "no job was started");
  });

  it("without elicitation: a destructive action returns a plan and a token and runs nothing; the token runs exactly that, once", async () => {
    const target = { worker_ids: ["a2", "a1"] };
    const file = tmpPath("confirm");
    const other = tmpPath("confirm-other");
    const jobsBefore = await newestJob(mcp);
    const plan = async (path: string, t: Record<string, unknown> = target) =>
      answer<ConfirmationAnswer>(await mcp.call("run_action", { action: "touch_file", arguments: { path }, target: t }), "plan").confirmation;

    const first = await plan(file);
    assert.match(first.token, /\S{16,}/);
    const ttl = Date.parse(first.expiresAt) - Date.now();
    assert.ok(ttl > 60_000 && ttl <= 125_000, `valid about 2 minutes (${ttl} ms)`);
    assert.deepEqual(first.plan, { action: "touch_file", arguments: { path: file }, destructive: true, targets: { count: 2, first: ["a1", "a2"] } });
    assert.equal(existsSync(file), false);
    assert.equal(await newestJob(mcp), jobsBefore, "nothing ran");

    // Refused: other arguments, another target, a token never issued. Nothing runs either way.
    const refused = async (args: Record<string, unknown>, token: string) => {
      const r = await mcp.call("run_action", { action: "touch_file", ...args, confirm: token });
      const s = r.structuredContent as Partial<ConfirmationAnswer & JobAnswer> | undefined;
      if (r.isError) assert.match(text(r), /^E_CONFIRMATION\b/);
      else assert.ok(s?.confirmation && s.confirmation.token !== token && !s.job, `refused with a new plan, not run: ${text(r).slice(0, 300)}`);
    };
    await refused({ arguments: { path: other }, target }, first.token);
    await refused({ arguments: { path: file }, target: { worker_id: "a1" } }, (await plan(file)).token);
    await refused({ arguments: { path: file }, target }, "not-a-token-this-manager-issued");
    assert.equal(existsSync(file), false);
    assert.equal(existsSync(other), false);
    assert.equal(await newestJob(mcp), jobsBefore, "still nothing ran");

    const token = (await plan(file)).token;
    const ran = await runJob(mcp, { action: "touch_file", arguments: { path: file }, target, confirm: token });
    assert.equal(ran.job.status, "succeeded");
    assert.deepEqual(ran.invocations.map((i) => [i.worker, i.status]), [["a1", "succeeded"], ["a2", "succeeded"]]);
    assert.equal(existsSync(file), true, "touched");

    rmSync(file);
    await refused({ arguments: { path: file }, target }, token);
    assert.equal(existsSync(file), false, "a used token runs nothing again");
  });

  it("tool annotations: list_actions and get_job read-only, run_action destructive; tools/list still under 32 KB", async () => {
    const listed = await mcp.client.listTools();
    const tool = (n: string) => listed.tools.find((t) => t.name === n)!;
    for (const n of ["list_actions", "get_job"]) assert.equal(tool(n).annotations?.readOnlyHint, true, n);
    assert.deepEqual([tool("run_action").annotations?.readOnlyHint, tool("run_action").annotations?.destructiveHint], [false, true]);
    assert.equal(tool("cancel_job").annotations?.readOnlyHint, false);
    for (const n of ["list_actions", "run_action", "get_job", "cancel_job"]) assert.ok(tool(n).outputSchema, `${n} declares an output schema`);
    const size = JSON.stringify(listed).length;
    assert.ok(size < 32 * 1024, `tools/list is ${size} characters`);
  });

  it("get_worker_events lists a worker's action outcomes beside, not instead of, its health events", async () => {
    const ev = await mcp.ok<{ events: Array<{ to: string }>; actions: Array<{ worker: string; jobId: string; action: string; status: string }> }>("get_worker_events", { worker_id: "a1" });
    assert.ok(ev.events.some((e) => e.to === "healthy"), "the health transition is still there");
    const actions = ev.actions.map((a) => `${a.action}:${a.status}`);
    for (const expected of ["processes:succeeded", "show_args:succeeded", "touch_file:succeeded"]) assert.ok(actions.includes(expected), `${expected} in ${actions.join(", ")}`);
    assert.ok(ev.actions.every((a) => a.worker === "a1" && a.jobId));
  });

  describe("a worker asked directly over the protocol, by a bare manager without the manager's checks", () => {
    let bare: BareManager;
    let a4: Proc;

    before(async () => {
      bare = await BareManager.start(fx.certs);
      const actionsDir = writeActionsDir(join(fx.dir, "actions-a4"), [SHOW_ARGS, TOUCH_FILE, NAP]);
      a4 = startActionWorker(fx.certs, "a4", bare.url, { actionsDir, mcpServers: join(fx.dir, "no-such-mcp-servers.json") });
      await bare.connected();
    });
    after(async () => {
      a4?.kill("SIGKILL");
      await bare?.close();
    });

    it("lists its catalogue under the hash it sent in hello", async () => {
      const list = await bare.request("actions.list", {});
      const r = list.result as { hash: string; entries: Array<{ name: string }>; next: number | null };
      assert.equal(r.hash, bare.hello!.catalog);
      assert.ok(r.entries.some((e) => e.name === "show_args") && r.entries.some((e) => e.name === "processes"));
    });

    it("refuses an action it does not define, and arguments its definition does not allow", async () => {
      const file = tmpPath("bare");
      const run = (invocation: string, action: string, args: Record<string, unknown>) =>
        bare.request("actions.run", { invocation, action, arguments: args, timeoutMs: 5000 });
      assert.equal((await run("u1", "rm_everything", {})).error?.code, "unknown_action");
      assert.equal((await run("u2", "fixture.echo", { text: "x" })).error?.code, "unknown_action");
      assert.equal((await run("u3", "touch_file", { path: "/etc/mcp-fleet-bare" })).error?.code, "invalid_arguments");
      assert.equal((await run("u4", "show_args", { text: "-n" })).error?.code, "invalid_arguments");
      assert.equal((await run("u5", "show_args", { text: "a", extra: "b" })).error?.code, "invalid_arguments");
      assert.equal(existsSync("/etc/mcp-fleet-bare"), false);

      const ok = await run("u6", "show_args", { text: `; touch ${file}` });
      const result = ok.result as { status: string; stdout: { tail: string } };
      assert.equal(result.status, "succeeded", JSON.stringify(ok));
      assert.equal(result.stdout.tail, `<fixed>\n<; touch ${file}>\n`);
      const streamed = ok.progress.map((p) => (p.output as { data: string } | undefined)?.data ?? "").join("");
      assert.equal(streamed, result.stdout.tail, "the output came in progress frames first");
      assert.equal(existsSync(file), false);
    });

    it("when its session ends, the worker kills what that session started", async () => {
      void bare.request("actions.run", { invocation: "s1", action: "nap", arguments: { seconds: 63 }, timeoutMs: 60_000 }).catch(() => {});
      const sleeps = await until(() => {
        const s = sleepsUnder(a4.pid, 63);
        return s.length === 2 ? s : undefined;
      }, 10_000, "a4 running sleep 63");
      groups.add(sleeps.map((p) => p.pgrp));
      const t = performance.now();
      bare.dropSession();
      await until(() => (sleeps.every((p) => groupMembers(p.pgrp).length === 0) ? true : undefined), 8000, "the group gone", 10);
      console.log(`session end: a4's program group gone after ${Math.round(performance.now() - t)} ms`);
    });
  });

  describe("a worker-hosted MCP server (test/fixtures/mcp-server.ts as server `fixture` on a1)", () => {
    const pidOf = async (): Promise<number> => {
      const a = await runConfirmed(mcp, { action: "fixture.pid", target: { worker_id: "a1" } });
      const inv = a.invocations[0]!;
      assert.equal(inv.status, "succeeded", `fixture.pid: ${inv.error} ${inv.stderr.tail}`);
      const pid = Number((inv.structured as { pid?: number } | undefined)?.pid ?? /\d+/.exec(inv.stdout.tail)?.[0]);
      assert.ok(pid > 1, `fixture.pid answered a pid: ${JSON.stringify(inv)}`);
      return pid;
    };

    it("its tools run through run_action with structured results, in a server below the worker", async () => {
      const a = await runConfirmed(mcp, { action: "fixture.echo", arguments: { text: "hello fleet" }, target: { worker_id: "a1" } });
      const inv = a.invocations[0]!;
      assert.equal(inv.status, "succeeded", `${inv.error} ${inv.stderr.tail}`);
      assert.ok(inv.structured, "structured content");
      assert.match(JSON.stringify(inv.structured), /hello fleet/);
      assert.match(inv.stdout.tail, /hello fleet/, "text content becomes stdout");

      const pid = await pidOf();
      assert.ok(descendants(workers.get("a1")!.pid).some((p) => p.pid === pid), "the server is a child of a1's agent");
    });

    it("killed while a call runs: that call fails clearly (SERVER_DIED); the next call restarts it", async () => {
      const pid = await pidOf();
      const known = await newestJob(mcp);
      const hanging = runConfirmed(mcp, { action: "fixture.hang", target: { worker_id: "a1" }, timeout: "30s" });
      // The hang is running once its job has a running invocation.
      await newJob(mcp, known, 10_000, (j) => j.action === "fixture.hang" && j.counts.running === 1);
      process.kill(pid, "SIGKILL");
      const t = performance.now();
      const a = await hanging;
      const inv = a.invocations[0]!;
      assert.deepEqual([inv.status, inv.error], ["failed", "SERVER_DIED"]);
      assert.ok(performance.now() - t < 5000, "the call ended when the server died, not at its timeout");

      const again = await pidOf();
      assert.notEqual(again, pid, "restarted: another process");
    });

    it("a tool answering isError fails with TOOL_ERROR, its text kept", async () => {
      const a = await runJob(mcp, { action: "fixture.fail", target: { worker_id: "a1" } });
      const inv = a.invocations[0]!;
      assert.deepEqual([inv.status, inv.error], ["failed", "TOOL_ERROR"]);
      assert.match(inv.stdout.tail, /it went wrong/);
    });

    it("a tool that crashes its server fails with SERVER_DIED, and the server comes back", async () => {
      const a = await runConfirmed(mcp, { action: "fixture.crash", target: { worker_id: "a1" } });
      assert.deepEqual([a.invocations[0]!.status, a.invocations[0]!.error], ["failed", "SERVER_DIED"]);
      assert.ok((await pidOf()) > 1);
    });

    it("hung → timed_out, and the next call gets a fresh server", async () => {
      const pid = await pidOf();
      const t = performance.now();
      const a = await runConfirmed(mcp, { action: "fixture.hang", target: { worker_id: "a1" }, timeout: "1s" });
      const inv = a.invocations[0]!;
      assert.equal(inv.status, "timed_out");
      assert.ok(performance.now() - t < 8000);
      const again = await pidOf();
      assert.notEqual(again, pid, "the hung server was stopped");
    });
  });

  describe("after a manager restart (same state file, same port), with a client that declares elicitation", () => {
    let earlier: JobSummary[] = [];

    before(async () => {
      earlier = (await mcp.ok<{ jobs: JobSummary[] }>("get_job")).jobs;
      const first = mcp;
      const port = mcp.port;
      await first.close();
      assert.equal((await first.exited).code, 0);
      firstLines.push(...first.lines);
      mcp = await McpManager.start(fx.certs, [], null, {
        port,
        onElicit: (r) => {
          elicited.push(r);
          return elicit(r);
        },
      });
      for (const id of ["a1", "a2"]) await mcp.waitForWorker(id, (w) => w.connected, 15_000);
      await until(async () => {
        const { actions } = await mcp.ok<ActionsAnswer>("list_actions");
        return actions.find((a) => a.name === "touch_file")?.offeredBy.count === 2 ? true : undefined;
      }, 10_000, "touch_file offered by a1 and a2 again");
    });

    it("each job was audited as a JSON line on stderr when it started and when it ended", () => {
      assert.ok(earlier.length >= 8, `jobs so far: ${earlier.length}`);
      for (const job of earlier) {
        const audit = firstLines.filter((l) => l.audit === "job" && l.jobId === job.id);
        assert.ok(audit.length >= 2, `${job.id}: start and end lines (${audit.length})`);
        const end = audit.at(-1)!;
        assert.deepEqual(end.client, { name: "mcp-fleet-test", version: "0.0.0" });
        assert.equal(end.action, job.action);
        assert.deepEqual(end.arguments, job.arguments);
        assert.equal(end.status, job.status);
        assert.deepEqual(end.counts, job.counts);
        assert.ok(end.targets !== undefined && end.createdAt === job.createdAt && end.endedAt === job.endedAt);
      }
    });

    it("the jobs and their audit survive: same ids, who asked, what, where, when, outcome, and the inline tails", async () => {
      const now = (await mcp.ok<{ jobs: JobSummary[] }>("get_job")).jobs;
      const summary = (j: JobSummary) => [j.id, j.action, j.arguments, j.status, j.client, j.createdAt, j.endedAt, j.targets, j.counts];
      assert.deepEqual(now.slice(0, earlier.length).map(summary), earlier.map(summary));

      const shell = earlier.find((j) => j.action === "show_args" && j.status === "succeeded")!;
      const a = await mcp.ok<JobAnswer>("get_job", { job_id: shell.id });
      assert.equal(a.invocations.length, 3);
      for (const inv of a.invocations) assert.match(inv.stdout.tail, /^<fixed>\n<.*touch \/tmp\/pwned-/s, "the tails are kept");
    });

    it("elicitation names the action and the targets; decline or cancel runs nothing, accept runs it", async () => {
      const file = tmpPath("elicit");
      const args = { action: "touch_file", arguments: { path: file }, target: { worker_ids: ["a1", "a2"] } };

      for (const action of ["decline", "cancel"] as const) {
        elicit = () => ({ action });
        const asked = elicited.length;
        const newest = await newestJob(mcp);
        const r = await mcp.call("run_action", args);
        assert.equal(elicited.length, asked + 1, "one elicitation/create");
        const message = elicited.at(-1)!.message;
        for (const word of ["touch_file", "a1", "a2", file]) assert.ok(message.includes(word), `the request names ${word}: ${message}`);
        assert.equal(existsSync(file), false, `${action}: untouched`);
        const s = r.structuredContent as Partial<JobAnswer> | undefined;
        assert.ok(r.isError || !s?.job || s.job.counts.succeeded === 0, `${action}: nothing ran: ${text(r).slice(0, 300)}`);
        const latest = (await mcp.ok<{ jobs: JobSummary[] }>("get_job")).jobs[0];
        assert.ok(latest?.id === newest || latest?.counts.succeeded === 0, `${action}: no job ran`);
      }

      elicit = (r) => ({ action: "accept", content: fill(r) });
      const a = await runJob(mcp, args);
      assert.equal(a.job.status, "succeeded");
      assert.equal(existsSync(file), true, "accept: touched");
      assert.deepEqual([...byWorker(a).keys()], ["a1", "a2"]);
      assert.deepEqual(a.job.client, { name: "mcp-fleet-test", version: "0.0.0" });
    });
  });
});

/** An acceptance's content as a person would fill the form: yes to every boolean, the first choice of each enum. */
function fill(r: ElicitRequest["params"]): Record<string, string | number | boolean> {
  const schema = (r as { requestedSchema?: { properties?: Record<string, { type?: string; enum?: string[]; default?: unknown }> } }).requestedSchema;
  const content: Record<string, string | number | boolean> = {};
  for (const [name, p] of Object.entries(schema?.properties ?? {})) {
    if (p.type === "boolean") content[name] = true;
    else if (p.enum?.length) content[name] = p.enum[0]!;
    else if (p.type === "number" || p.type === "integer") content[name] = 1;
    else content[name] = "yes";
  }
  return content;
}
