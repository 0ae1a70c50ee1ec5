import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  answer,
  BIG_OUTPUT,
  BIG_OUTPUT_BYTES,
  BIG_OUTPUT_LINE,
  byWorker,
  groupMembers,
  Groups,
  NAP,
  newJob,
  newestJob,
  probe,
  rssKiB,
  runJob,
  sleepsUnder,
  startActionWorker,
  text,
  until,
  waitForJob,
  writeActionsDir,
  type JobAnswer,
  type OutputAnswer,
} from "../helpers/actions.js";
import { useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import type { Proc } from "../helpers/processes.js";

/*
 * Jobs end to end: six real workers with the same actions (but one whose `probe` fails), a real manager, the
 * SDK's client, and /proc as the judge of what is still running. Timeouts, cancel_job and MCP cancellation,
 * max_concurrency and max_errors, lost and undeliverable workers, and output far over the limits.
 */

const IDS = ["j1", "j2", "j3", "j4", "j5", "j6"];

describe("jobs on six workers: timeouts, cancellation, limits, lost workers, big output", () => {
  const fx = useCerts("actions-jobs", IDS, { before, after });
  let mcp: McpManager;
  const workers = new Map<string, Proc>();
  const groups = new Groups();

  /** Waits until each of `ids` runs its two `/bin/sleep <seconds>`; returns their process groups. */
  const napping = (ids: string[], seconds: number) =>
    until(() => {
      const found = ids.map((id) => sleepsUnder(workers.get(id)!.pid, seconds));
      if (found.some((s) => s.length < 2)) return undefined;
      const pgrps = new Set(found.flat().map((p) => p.pgrp));
      groups.add(pgrps);
      return pgrps;
    }, 10_000, `${ids.join(",")} running sleep ${seconds}`);

  const allGone = async (pgrps: Set<number>, timeoutMs: number) =>
    until(() => ([...pgrps].every((g) => groupMembers(g).length === 0) ? true : undefined), timeoutMs, "every process group gone", 5);

  before(async () => {
    mcp = await McpManager.start(fx.certs);
    for (const id of IDS) {
      const actionsDir = writeActionsDir(join(fx.dir, `actions-${id}`), [NAP, BIG_OUTPUT, probe(id !== "j1")]);
      workers.set(id, startActionWorker(fx.certs, id, mcp.url, { actionsDir, mcpServers: join(fx.dir, "none.json") }));
    }
    for (const id of IDS) await mcp.waitForWorker(id, (w) => w.connected, 20_000);
    await until(async () => {
      const { actions } = await mcp.ok<{ actions: Array<{ name: string; offeredBy: { count: number } }> }>("list_actions");
      return actions.find((a) => a.name === "nap")?.offeredBy.count === 6 ? true : undefined;
    }, 10_000, "nap offered by all six");
  });
  after(() => {
    groups.killAll();
    mcp?.kill();
  });

  it('sleep 60 with timeout "1s" → timed_out, and its whole process group is gone', async () => {
    const t = performance.now();
    const running = runJob(mcp, { action: "nap", arguments: { seconds: 60 }, target: { worker_id: "j1" }, timeout: "1s" });
    const pgrps = await napping(["j1"], 60);
    assert.equal(pgrps.size, 1, "both sleeps in one group: the program's own");
    assert.notEqual([...pgrps][0], workers.get("j1")!.pid, "not the agent's group");
    const a = await running;
    const inv = a.invocations[0]!;
    assert.deepEqual([a.job.status, inv.status, inv.exitCode], ["failed", "timed_out", null]);
    assert.equal(a.job.counts.timed_out, 1);
    assert.ok(inv.durationMs! >= 900 && inv.durationMs! < 7000, `ran ${inv.durationMs} ms`);
    assert.equal(a.job.timeoutMs, 1000);
    await allGone(pgrps, 2000);
    console.log(`timeout: job ended ${Math.round(performance.now() - t)} ms after it was asked for`);
  });

  it("cancel_job stops a running job on every worker within a second, leaving no process behind", async () => {
    const known = await newestJob(mcp);
    const running = mcp.call("run_action", { action: "nap", arguments: { seconds: 61 }, target: { all: true } });
    const pgrps = await napping(IDS, 61);
    const jobId = (await newJob(mcp, known)).id;
    const t = performance.now();
    const c = answer<{ job: JobAnswer["job"] }>(await mcp.call("cancel_job", { job_id: jobId }), "cancel_job");
    const answered = performance.now() - t;
    await allGone(pgrps, 5000);
    const gone = performance.now() - t;
    console.log(`cancel_job: answered after ${Math.round(answered)} ms, every process gone after ${Math.round(gone)} ms`);
    assert.equal(c.job.status, "cancelled");
    assert.equal(c.job.counts.cancelled, 6);
    assert.ok(gone < 3000, `gone after ${Math.round(gone)} ms`);

    const r = answer<JobAnswer>(await running, "the run_action call");
    assert.equal(r.job.id, jobId);
    assert.deepEqual(r.invocations.map((i) => i.status), IDS.map(() => "cancelled"));

    const again = await mcp.call("cancel_job", { job_id: jobId });
    assert.equal(again.isError, true, "an ended job cannot be cancelled");
    const unknown = await mcp.call("cancel_job", { job_id: "no-such-job" });
    assert.equal(unknown.isError, true);
    assert.match(text(unknown), /^E_[A-Z_]+/);
  });

  it("cancelling the MCP request cancels the job on every worker, leaving no process behind", async () => {
    const known = await newestJob(mcp);
    const abort = new AbortController();
    const call = mcp.client.callTool({ name: "run_action", arguments: { action: "nap", arguments: { seconds: 62 }, target: { all: true } } }, undefined, { signal: abort.signal });
    const pgrps = await napping(IDS, 62);
    const jobId = (await newJob(mcp, known)).id;
    const t = performance.now();
    abort.abort();
    await assert.rejects(call, /abort/i);
    await allGone(pgrps, 5000);
    const gone = performance.now() - t;
    console.log(`MCP cancellation: every process gone after ${Math.round(gone)} ms`);
    assert.ok(gone < 3000, `gone after ${Math.round(gone)} ms`);
    const a = await waitForJob(mcp, jobId, 5000);
    assert.equal(a.job.status, "cancelled");
    assert.deepEqual(a.invocations.map((i) => i.status), IDS.map(() => "cancelled"));
  });

  it("max_concurrency 2 over six workers: never more than two running, by the workers' own clocks", async () => {
    const a = await runJob(mcp, { action: "nap", arguments: { seconds: 1 }, target: { all: true }, max_concurrency: 2 });
    assert.equal(a.job.status, "succeeded");
    assert.equal(a.job.maxConcurrency, 2);
    assert.equal(a.job.counts.succeeded, 6);
    const edges = a.invocations.flatMap((i) => [
      { at: Date.parse(i.startedAt!), d: 1 },
      { at: Date.parse(i.endedAt!), d: -1 },
    ]);
    // An end and a start in the same millisecond: the end first (the next starts only once one has ended).
    edges.sort((x, y) => x.at - y.at || x.d - y.d);
    let now = 0;
    let most = 0;
    for (const e of edges) most = Math.max(most, (now += e.d));
    assert.equal(most, 2, "two at a time, and never three");
  });

  it("max_errors 0 with a failing first invocation: the rest are skipped", async () => {
    const a = await runJob(mcp, { action: "probe", target: { all: true }, max_concurrency: 1 });
    assert.equal(a.job.status, "failed");
    const inv = byWorker(a);
    assert.deepEqual([inv.get("j1")!.status, inv.get("j1")!.exitCode], ["failed", 1]);
    for (const id of IDS.slice(1)) assert.equal(inv.get(id)!.status, "skipped", id);
    assert.deepEqual(
      Object.entries(a.job.counts).filter(([, n]) => n > 0),
      [["failed", 1], ["skipped", 5]],
    );
  });

  it("5 MiB of output: a ≤ 4 KiB tail inline with the total size, the kept 1 MiB page by page, manager memory bounded", async () => {
    const stream = (BIG_OUTPUT_LINE + "\n").repeat(Math.ceil(BIG_OUTPUT_BYTES / (BIG_OUTPUT_LINE.length + 1))).slice(0, BIG_OUTPUT_BYTES);
    const rssBefore = rssKiB(mcp.pid);
    const targets = ["j2", "j3"];
    const a = await runJob(mcp, { action: "big_output", target: { worker_ids: targets } }, 60_000);
    assert.equal(a.job.status, "succeeded");
    for (const inv of a.invocations) {
      assert.equal(inv.stdout.bytes, BIG_OUTPUT_BYTES, `${inv.worker}: the total size`);
      assert.equal(inv.stdout.truncated, true);
      assert.ok(Buffer.byteLength(inv.stdout.tail) <= 4096 && inv.stdout.tail.length > 3000, `tail of ${Buffer.byteLength(inv.stdout.tail)} bytes`);
      assert.ok(stream.endsWith(inv.stdout.tail), "the tail is the end of what it printed");
      assert.equal(JSON.stringify(inv).length < 16_384, true, "one invocation's inline answer stays small");
    }

    let kept = "";
    let cursor: string | null = null;
    let pages = 0;
    let truncated: boolean | undefined;
    do {
      const p: OutputAnswer = await mcp.ok<OutputAnswer>("get_job", { job_id: a.job.id, worker_id: "j2", ...(cursor ? { cursor } : {}) });
      assert.equal(p.worker, "j2");
      assert.ok(JSON.stringify(p).length < 200_000, "a page is bounded");
      kept += p.output.stdout;
      truncated = p.output.truncated;
      cursor = p.nextCursor;
      pages++;
    } while (cursor && pages < 2000);
    assert.equal(cursor, null, `paged to the end in ${pages} pages`);
    assert.ok(pages > 1, "more than one page");
    assert.equal(truncated, true);
    assert.equal(kept.length, 1024 * 1024, "the kept first MiB");
    assert.ok(kept === stream.slice(0, kept.length), "exactly what the program printed first");

    const rssAfter = rssKiB(mcp.pid);
    const growthMiB = (rssAfter - rssBefore) / 1024;
    console.log(`big output: manager RSS ${Math.round(rssBefore / 1024)} → ${Math.round(rssAfter / 1024)} MiB (${growthMiB.toFixed(1)} MiB for 2 × 5 MiB printed), ${pages} pages`);
    assert.ok(growthMiB < 96, `manager RSS grew ${growthMiB.toFixed(1)} MiB`);
  });

  it("a worker killed mid-action → lost; one not connected → undeliverable; the others unaffected", async () => {
    workers.get("j6")!.kill("SIGKILL");
    await mcp.waitForWorker("j6", (w) => !w.connected, 5000);
    const j5 = workers.get("j5")!;
    const running = runJob(mcp, { action: "nap", arguments: { seconds: 3 }, target: { worker_ids: ["j4", "j5", "j6"] }, max_errors: 10 });
    await napping(["j4", "j5"], 3);
    j5.kill("SIGKILL");
    const a = await running;
    const inv = byWorker(a);
    assert.equal(inv.get("j4")!.status, "succeeded");
    assert.equal(inv.get("j5")!.status, "lost");
    assert.equal(inv.get("j6")!.status, "undeliverable");
    assert.deepEqual([a.job.counts.succeeded, a.job.counts.lost, a.job.counts.undeliverable], [1, 1, 1]);
    assert.equal(a.job.status, "succeeded", "as SSM counts it: two errors, within max_errors 10");
    // j5's agent was killed outright, so nobody was left to end its sleeps; the test does (after() too).
    groups.killAll();

    const rest = await runJob(mcp, { action: "probe", target: { worker_ids: ["j2", "j3", "j4"] } });
    assert.equal(rest.job.counts.succeeded, 3, "the others still run actions");
  });
});
