import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY } from "../../src/core/health.js";
import { Registry, type SessionInfo } from "../../src/core/registry.js";
import { FleetError } from "../../src/errors.js";
import type { Plan, PlanError, RunRequest } from "../../src/jobs/api.js";
import { CatalogueCache } from "../../src/jobs/catalogues.js";
import { Job, type JobInit } from "../../src/jobs/job.js";
import { OutputKeeper } from "../../src/jobs/output.js";
import { buildPlan, resolveLimit, resolveTargets, type PlanInputs, type PlanWorker } from "../../src/jobs/plan.js";
import { classifyFailure, outcomeOf, runInvocation, type WorkerLink } from "../../src/jobs/runner.js";
import { Scheduler } from "../../src/jobs/schedule.js";
import { createJobService, type JobManager } from "../../src/jobs/service.js";
import { ActionEvents, JobStore } from "../../src/jobs/store.js";
import { createLogger } from "../../src/log.js";
import { CatalogEntry, catalogHash, definitionHash, MAX_KEPT_OUTPUT_BYTES, type RunResult } from "../../src/protocol/actions.js";
import type { CallOptions } from "../../src/protocol/correlator.js";
import { seeded } from "../helpers/prng.js";

const silent = createLogger({ name: "test", level: "silent" });

const entry = (over: Record<string, unknown> = {}): CatalogEntry =>
  CatalogEntry.parse({
    name: "echo",
    kind: "command",
    description: "Echo its arguments",
    destructive: false,
    params: { text: { type: "string", maxLength: 20 } },
    timeoutMs: 30_000,
    concurrency: 2,
    ...over,
  });

function inputsOf(workers: Array<PlanWorker & { entries?: CatalogEntry[] }>): PlanInputs {
  return {
    workers: [...workers].sort((a, b) => (a.id < b.id ? -1 : 1)),
    offered: (id, action) => {
      const e = workers.find((w) => w.id === id)?.entries?.find((x) => x.name === action);
      return e ? { entry: e, definitionHash: definitionHash(e) } : undefined;
    },
  };
}

const w = (id: string, labels: Record<string, string> = {}, entries: CatalogEntry[] = [entry()], state: PlanWorker["state"] = "healthy") => ({ id, labels, state, entries });

const isError = (p: Plan | PlanError): p is PlanError => "code" in p;

describe("jobs: targets", () => {
  const fleet = inputsOf([w("a1", { role: "web" }), w("a2", { role: "db" }), w("a3", { role: "web" }, [entry(), entry({ name: "other" })], "offline"), w("b1", {}, [])]);

  it("explicit ids must be known; an unknown one is E_UNKNOWN_WORKER naming it", () => {
    const r = resolveTargets({ workerIds: ["a1", "zz"] }, "echo", fleet);
    assert.ok("code" in r && r.code === "E_UNKNOWN_WORKER" && r.message.includes("zz"));
    assert.deepEqual(resolveTargets({ workerId: "a2" }, "echo", fleet), { ids: ["a2"] });
    assert.deepEqual(resolveTargets({ workerIds: ["a2", "a1", "a2"] }, "echo", fleet), { ids: ["a1", "a2"] });
  });

  it("an explicit id whose catalogue lacks the action is refused by name", () => {
    const r = resolveTargets({ workerIds: ["a1", "b1"] }, "echo", fleet);
    assert.ok("code" in r && r.code === "E_UNKNOWN_ACTION" && r.message.includes("b1"));
  });

  it('a label "k=v" or "k", and all, pick known workers in any state that offer the action', () => {
    assert.deepEqual(resolveTargets({ label: "role=web" }, "echo", fleet), { ids: ["a1", "a3"] });
    assert.deepEqual(resolveTargets({ label: "role" }, "echo", fleet), { ids: ["a1", "a2", "a3"] });
    assert.deepEqual(resolveTargets({ all: true }, "echo", fleet), { ids: ["a1", "a2", "a3"] });
    assert.deepEqual(resolveTargets({ all: true }, "other", fleet), { ids: ["a3"] });
  });

  it("nobody offering the action is E_UNKNOWN_ACTION; a label matching none of those who do is E_NO_TARGETS", () => {
    assert.equal((resolveTargets({ all: true }, "nope", fleet) as PlanError).code, "E_UNKNOWN_ACTION");
    assert.equal((resolveTargets({ label: "role=db" }, "other", fleet) as PlanError).code, "E_NO_TARGETS");
    assert.equal((resolveTargets({ workerIds: [] }, "echo", fleet) as PlanError).code, "E_NO_TARGETS");
  });
});

describe("jobs: limits", () => {
  it('"N%" of the targets rounds up; a concurrency is at least 1', () => {
    assert.equal(resolveLimit("10%", 25, "concurrency", "max_concurrency"), 3);
    assert.equal(resolveLimit("1%", 10, "concurrency", "max_concurrency"), 1);
    assert.equal(resolveLimit("100%", 7, "concurrency", "max_concurrency"), 7);
    assert.equal(resolveLimit("10%", 10, "concurrency", "max_concurrency"), 1);
    assert.equal(resolveLimit("50%", 3, "errors", "max_errors"), 2);
    assert.equal(resolveLimit("0%", 30, "errors", "max_errors"), 0);
    assert.equal(resolveLimit("33.3%", 1000, "errors", "max_errors"), 333);
    assert.equal(resolveLimit(5, 2, "concurrency", "max_concurrency"), 5);
  });

  it("a limit that is not a count or a percentage is E_INVALID_LIMIT naming the argument", () => {
    for (const bad of ["0%", "101%", "abc", "%", "-5%"] as const) {
      const r = resolveLimit(bad as `${number}%`, 10, "concurrency", "max_concurrency");
      assert.ok(typeof r !== "number" && r.code === "E_INVALID_LIMIT" && r.param === "max_concurrency", bad);
    }
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.equal(typeof resolveLimit(bad, 10, "concurrency", "c"), "object", String(bad));
    assert.equal(resolveLimit(0, 10, "errors", "max_errors"), 0);
    assert.equal(typeof resolveLimit(-1, 10, "errors", "max_errors"), "object");
  });
});

describe("jobs: plans", () => {
  const req = (over: Partial<RunRequest> = {}): RunRequest => ({ action: "echo", arguments: { text: "hi" }, target: { all: true }, ...over });

  it("a plan holds the sorted targets, the limits, the definitions and the longest timeout", () => {
    const long = entry({ timeoutMs: 60_000, destructive: true });
    const p = buildPlan(req({ maxConcurrency: "50%", maxErrors: 1 }), inputsOf([w("b"), w("a", {}, [long]), w("c")]));
    assert.ok(!isError(p));
    assert.deepEqual(p.targets, ["a", "b", "c"]);
    assert.equal(p.maxConcurrency, 2);
    assert.equal(p.maxErrors, 1);
    assert.equal(p.definitionHashes.length, 2);
    assert.equal(p.destructive, true, "destructive if any definition is");
    assert.equal(p.timeoutMs, 60_000);
    assert.deepEqual(p.target, { all: true });
  });

  it("defaults: max_concurrency 10, max_errors 0", () => {
    const p = buildPlan(req(), inputsOf([w("a")]));
    assert.ok(!isError(p));
    assert.equal(p.maxConcurrency, 10);
    assert.equal(p.maxErrors, 0);
  });

  it("an argument failing any definition among the targets is E_INVALID_ARGUMENT naming the parameter", () => {
    const strict = entry({ params: { text: { type: "string", maxLength: 3 } } });
    const p = buildPlan(req({ arguments: { text: "longer" } }), inputsOf([w("a"), w("b", {}, [strict])]));
    assert.ok(isError(p) && p.code === "E_INVALID_ARGUMENT" && p.param === "text");
    assert.match((p as PlanError).message, /^parameter text: must be at most 3 characters/);
    const extra = buildPlan(req({ arguments: { text: "x", nope: 1 } }), inputsOf([w("a")]));
    assert.ok(isError(extra) && extra.param === "nope");
    const missing = buildPlan(req({ arguments: {} }), inputsOf([w("a")]));
    assert.ok(isError(missing) && missing.param === "text");
    const noParams = buildPlan({ action: "ps", arguments: { x: 1 }, target: { all: true } }, inputsOf([w("a", {}, [entry({ name: "ps", params: undefined })])]));
    assert.ok(isError(noParams) && noParams.param === "x", "an action without params takes no arguments");
  });

  it("an MCP tool's arguments are its server's to check", () => {
    const tool = entry({ name: "files.read", kind: "mcp", params: undefined, inputSchema: { type: "object" } });
    const p = buildPlan({ action: "files.read", arguments: { anything: [1, 2] }, target: { workerId: "a" } }, inputsOf([w("a", {}, [tool])]));
    assert.ok(!isError(p));
  });

  it("a timeout longer than the action's own, or under 100 ms, is refused; a shorter one is the plan's", () => {
    const over = buildPlan(req({ timeoutMs: 31_000 }), inputsOf([w("a")]));
    assert.ok(isError(over) && over.param === "timeout");
    const tiny = buildPlan(req({ timeoutMs: 50 }), inputsOf([w("a")]));
    assert.ok(isError(tiny) && tiny.param === "timeout");
    const ok = buildPlan(req({ timeoutMs: 1000 }), inputsOf([w("a")]));
    assert.ok(!isError(ok) && ok.timeoutMs === 1000);
  });
});

function jobOf(n: number, over: Partial<JobInit> = {}, workers?: string[]): Job {
  const ids = workers ?? Array.from({ length: n }, (_, i) => `w${String(i).padStart(3, "0")}`);
  return new Job({
    id: over.id ?? "job-1",
    action: "echo",
    arguments: {},
    target: { all: true },
    client: { name: "test", version: "1" },
    createdAt: 0,
    maxConcurrency: 2,
    maxErrors: 0,
    timeoutMs: 1000,
    invocations: ids.map((worker) => ({ worker, kind: "command" as const, timeoutMs: 1000 })),
    ...over,
  });
}

describe("jobs: the job and the scheduler", () => {
  it("never more running than max_concurrency, the per-worker cap or the fleet-wide cap, whatever the order of endings", () => {
    const rng = seeded(16);
    for (let round = 0; round < 50; round++) {
      const sched = new Scheduler({ maxInFlight: 1 + rng.int(6), maxPerWorker: 1 + rng.int(2) });
      const workers = ["a", "b", "c", "d", "e", "f"];
      const jobs = Array.from({ length: 3 }, (_, j) => jobOf(0, { id: `job-${j}`, maxConcurrency: 1 + rng.int(4), maxErrors: 1000 }, workers.filter(() => rng.rand() < 0.8)));
      for (const job of jobs) sched.add(job);
      const running: Array<{ job: Job; inv: Job["invocations"][number] }> = [];
      for (let step = 0; step < 200; step++) {
        running.push(...sched.take());
        const perWorker = new Map<string, number>();
        for (const r of running) perWorker.set(r.inv.worker, (perWorker.get(r.inv.worker) ?? 0) + 1);
        assert.ok(running.length <= sched["limits"].maxInFlight, "fleet-wide cap");
        for (const n of perWorker.values()) assert.ok(n <= sched["limits"].maxPerWorker, "per-worker cap");
        for (const job of jobs) assert.ok(job.counts.running <= job.maxConcurrency, "max_concurrency");
        assert.equal(sched.inFlight, running.length);
        if (running.length === 0) break;
        const [done] = running.splice(rng.int(running.length), 1);
        sched.end(done!.job, done!.inv, { status: rng.rand() < 0.2 ? "failed" : "succeeded" }, step);
      }
      for (const job of jobs) {
        assert.ok(job.done, "every job ends");
        assert.equal(job.counts.succeeded + job.counts.failed, job.invocations.length);
      }
    }
  });

  it("max_errors 0: the first error skips everything still pending; running ones finish", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const job = jobOf(6, { maxConcurrency: 2, maxErrors: 0 });
    sched.add(job);
    const [a, b] = sched.take();
    assert.equal(job.counts.running, 2);
    sched.end(job, a!.inv, { status: "failed", exitCode: 1 }, 10);
    assert.equal(job.counts.skipped, 4);
    assert.equal(job.status, "running", "b still runs");
    assert.deepEqual(sched.take(), [], "nothing new starts");
    sched.end(job, b!.inv, { status: "succeeded", exitCode: 0 }, 11);
    assert.equal(job.status, "failed");
    assert.equal(job.endedAt, 11);
    assert.deepEqual(job.counts, { pending: 0, running: 0, succeeded: 1, failed: 1, timed_out: 0, cancelled: 0, undeliverable: 0, lost: 0, skipped: 4 });
  });

  it("max_errors N: skipping starts after more than N errors, and error statuses are failed, timed_out, undeliverable, lost", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const job = jobOf(8, { maxConcurrency: 1, maxErrors: 3 });
    sched.add(job);
    for (const status of ["failed", "timed_out", "undeliverable", "cancelled", "succeeded"] as const) {
      const [t] = sched.take();
      sched.end(job, t!.inv, { status }, 0);
    }
    assert.equal(job.counts.skipped, 0, "3 errors are within max_errors 3");
    const [t] = sched.take();
    sched.end(job, t!.inv, { status: "lost" }, 0);
    assert.equal(job.counts.skipped, 2);
    assert.equal(job.status, "failed");
  });

  it("all succeeded is succeeded; errors within max_errors still succeed", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const ok = jobOf(3, { maxConcurrency: 10 });
    const tolerant = jobOf(3, { id: "job-2", maxConcurrency: 10, maxErrors: 1 });
    sched.add(ok);
    sched.add(tolerant);
    for (const { job, inv } of sched.take()) sched.end(job, inv, { status: job === tolerant && inv.worker === "w000" ? "failed" : "succeeded" }, 5);
    assert.equal(ok.status, "succeeded");
    assert.equal(tolerant.status, "succeeded");
  });

  it("a worker at its cap waits while a later invocation of the same job starts", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 1 });
    const first = jobOf(0, { id: "job-a", maxConcurrency: 5 }, ["x"]);
    const second = jobOf(0, { id: "job-b", maxConcurrency: 5 }, ["x", "y"]);
    sched.add(first);
    sched.add(second);
    const started = sched.take().map((t) => `${t.job.id}/${t.inv.worker}`);
    assert.deepEqual(started, ["job-a/x", "job-b/y"]);
    const x = first.invocations[0]!;
    sched.end(first, x, { status: "succeeded" }, 1);
    assert.deepEqual(sched.take().map((t) => `${t.job.id}/${t.inv.worker}`), ["job-b/x"]);
  });

  it("cancel: pending ones are cancelled, running ones are handed back, and the job is cancelled once they end", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const job = jobOf(5, { maxConcurrency: 2 });
    sched.add(job);
    sched.take();
    const running = sched.cancel(job, 3);
    assert.equal(running.length, 2);
    assert.equal(job.counts.cancelled, 3);
    assert.deepEqual(sched.take(), []);
    for (const inv of running) sched.end(job, inv, { status: "cancelled", signal: "SIGTERM" }, 4);
    assert.equal(job.status, "cancelled");
    assert.equal(sched.inFlight, 0);
    assert.equal(sched.end(job, running[0]!, { status: "succeeded" }, 5), false, "a late answer changes nothing");
  });

  it("abandoned (manager stopped): running ones are lost, pending ones cancelled, never skipped", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const job = jobOf(5, { maxConcurrency: 2 });
    sched.add(job);
    sched.take();
    sched.abandonAll(9, "E_MANAGER_STOPPED");
    assert.equal(job.counts.lost, 2);
    assert.equal(job.counts.cancelled, 3);
    assert.equal(job.invocations[0]!.error, "E_MANAGER_STOPPED");
    assert.equal(sched.inFlight, 0);
    assert.equal(job.status, "failed");
  });

  it("every ending reaches onEnd once, skipped and cancelled ones too", () => {
    const sched = new Scheduler({ maxInFlight: 100, maxPerWorker: 4 });
    const job = jobOf(4, { maxConcurrency: 1 });
    const ended: string[] = [];
    job.onEnd = (inv) => ended.push(`${inv.worker}:${inv.status}`);
    sched.add(job);
    const [t] = sched.take();
    sched.end(job, t!.inv, { status: "failed" }, 1);
    assert.deepEqual(ended, ["w000:failed", "w001:skipped", "w002:skipped", "w003:skipped"]);
  });
});

describe("jobs: the runner's outcomes", () => {
  const result = (over: Partial<RunResult> = {}): RunResult => ({
    status: "succeeded",
    exitCode: 0,
    signal: null,
    startedAt: "2026-01-01T00:00:00.000Z",
    endedAt: "2026-01-01T00:00:01.000Z",
    durationMs: 1000,
    stdout: { tail: "ok\n", bytes: 3, kept: 3 },
    stderr: { tail: "", bytes: 0, kept: 0 },
    ...over,
  });

  it("E_NOT_CONNECTED before the frame left is undeliverable; after it (the session ended) is lost", () => {
    assert.equal(classifyFailure(new FleetError("E_NOT_CONNECTED", "could not send", { cause: new Error("EPIPE") })).status, "undeliverable");
    assert.equal(classifyFailure(new FleetError("E_NOT_CONNECTED", "disconnected")).status, "lost");
  });

  it("a refusal is failed with its code; no answer in time is timed_out; an aborted call is cancelled", () => {
    const refusal = Object.assign(new FleetError("E_REMOTE", "x"), { remoteCode: "busy" });
    assert.deepEqual(classifyFailure(refusal), { status: "failed", error: "busy" });
    assert.equal(classifyFailure(new FleetError("E_TIMEOUT", "x")).status, "timed_out");
    assert.equal(classifyFailure(new FleetError("E_CLOSED", "x")).status, "cancelled");
    assert.deepEqual(classifyFailure(new FleetError("E_BAD_RESPONSE", "x")), { status: "failed", error: "E_BAD_RESPONSE" });
    assert.deepEqual(classifyFailure(new Error("boom")), { status: "failed", error: "E_INTERNAL" });
  });

  it("a built-in's structured result must match its output schema, else failed with E_BAD_RESPONSE", () => {
    const schemas = { processes: z.object({ processes: z.array(z.object({ pid: z.number() })) }) };
    const good = outcomeOf({ action: "processes", kind: "builtin" }, result({ structured: { processes: [{ pid: 1 }] } }), schemas);
    assert.equal(good.status, "succeeded");
    assert.deepEqual(good.structured, { processes: [{ pid: 1 }] });
    const bad = outcomeOf({ action: "processes", kind: "builtin" }, result({ structured: { processes: "<script>" } }), schemas);
    assert.deepEqual([bad.status, bad.error, bad.structured], ["failed", "E_BAD_RESPONSE", undefined]);
    const mcp = outcomeOf({ action: "processes", kind: "mcp" }, result({ structured: { anything: 1 } }), schemas);
    assert.equal(mcp.status, "succeeded", "an MCP tool's structured content is its own");
  });

  it("sizes and truncation come from the final result; `partial` says the worker kept less than was written", () => {
    const o = outcomeOf({ action: "x", kind: "command" }, result({ stdout: { tail: "z".repeat(4096), bytes: 5 * 1024 * 1024, kept: MAX_KEPT_OUTPUT_BYTES } }));
    assert.deepEqual(o.stdout, { tail: "z".repeat(4096), bytes: 5 * 1024 * 1024, truncated: true });
    assert.equal(o.partial, true);
    assert.equal(outcomeOf({ action: "x", kind: "command" }, result()).partial, false);
  });

  it("runInvocation: not connected means nothing is sent; output frames reach onOutput; the call's timeout has 10 s of grace", async () => {
    const calls: Array<{ method: string; options: CallOptions }> = [];
    let connected = false;
    const link: WorkerLink = {
      connected: () => connected,
      request: (async (_w: string, method: string, _p: unknown, options: CallOptions) => {
        calls.push({ method, options });
        options.onProgress?.({ type: "progress", id: 1, progress: 3, output: { stream: "stdout", data: "ok\n" } });
        options.onProgress?.({ type: "progress", id: 1, progress: 3 });
        return result();
      }) as WorkerLink["request"],
    };
    const order = { worker: "a", invocation: "job-1-0", action: "echo", kind: "command" as const, arguments: {}, timeoutMs: 2000 };
    const chunks: string[] = [];
    assert.deepEqual(await runInvocation(link, order, { onOutput: (c) => chunks.push(c.data) }), { status: "undeliverable", error: "E_NOT_CONNECTED" });
    assert.equal(calls.length, 0);
    connected = true;
    const o = await runInvocation(link, order, { onOutput: (c) => chunks.push(c.data) });
    assert.equal(o.status, "succeeded");
    assert.deepEqual(chunks, ["ok\n"]);
    assert.equal(calls[0]!.options.timeoutMs, 12_000);
  });
});

describe("jobs: kept output", () => {
  const chunk = (n: number, stream: "stdout" | "stderr" = "stdout") => ({ stream, data: "x".repeat(n) });

  it("keeps at most 1 MiB per invocation over both streams, and says it is truncated", () => {
    const k = new OutputKeeper();
    k.open("j");
    for (let i = 0; i < 200; i++) k.append("j", "a", chunk(8192, i % 2 ? "stderr" : "stdout"));
    const out = k.get("j", "a")!;
    assert.ok(out.stdout.length + out.stderr.length <= MAX_KEPT_OUTPUT_BYTES);
    assert.ok(out.stdout.length + out.stderr.length > MAX_KEPT_OUTPUT_BYTES - 8192);
    assert.equal(out.truncated, true);
  });

  it("over the manager-wide budget the oldest finished jobs' outputs go first; a running job's stay", () => {
    const k = new OutputKeeper(100_000);
    for (const id of ["old", "mid", "live"]) k.open(id);
    k.append("old", "a", chunk(40_000));
    k.append("mid", "a", chunk(40_000));
    k.finished("old");
    k.finished("mid");
    k.append("live", "a", chunk(40_000));
    assert.equal(k.get("old", "a"), undefined, "the oldest finished job's output was dropped");
    assert.ok(k.get("mid", "a"));
    assert.ok(k.bytes <= 100_000);
    k.append("live", "b", chunk(40_000));
    assert.equal(k.get("mid", "a"), undefined);
    k.append("live", "c", chunk(40_000));
    assert.equal(k.get("live", "c"), undefined, "with only running jobs left, what comes next is not kept");
    assert.ok(k.get("live", "a") && k.get("live", "b"));
    k.drop("live");
    assert.equal(k.bytes, 0);
  });
});

describe("jobs: the store", () => {
  it("keeps the last N finished jobs and none older than 7 days; running ones always", () => {
    const store = new JobStore(2, 7 * 86_400_000);
    const ended = (id: string, at: number) => {
      const job = jobOf(1, { id, createdAt: at });
      const sched = new Scheduler({ maxInFlight: 10, maxPerWorker: 10 });
      sched.add(job);
      for (const t of sched.take()) sched.end(job, t.inv, { status: "succeeded" }, at);
      return job;
    };
    store.add(ended("j1", 0));
    store.add(jobOf(1, { id: "run", createdAt: 1 }));
    store.add(ended("j2", 2));
    store.add(ended("j3", 3));
    assert.deepEqual(store.prune(4), ["j1"]);
    assert.deepEqual(store.recent().map((j) => j.id), ["j3", "j2", "run"]);
    assert.deepEqual(store.prune(3 + 7 * 86_400_000 + 1), ["j2", "j3"]);
    assert.deepEqual(store.recent().map((j) => j.id), ["run"]);
  });

  it("exports and restores jobs; one that does not fit is left out, not the rest", () => {
    const store = new JobStore();
    const job = jobOf(2, { id: "j1" });
    const sched = new Scheduler({ maxInFlight: 10, maxPerWorker: 10 });
    sched.add(job);
    const [a] = sched.take();
    sched.end(job, a!.inv, { status: "succeeded", exitCode: 0, stdout: { tail: "hello", bytes: 5, truncated: false } }, 7);
    store.add(job);
    const saved = JSON.parse(JSON.stringify(store.export())) as { jobs: unknown[] };
    saved.jobs.push({ id: "broken" });
    const again = new JobStore();
    const { restored, refused } = again.restore(saved);
    assert.equal(refused, 1);
    assert.equal(restored.length, 1);
    assert.deepEqual(restored[0]!.view(), job.view());
    assert.deepEqual(again.restore(undefined), { restored: [], refused: 0 });
  });

  it("action events: the newest 20 per worker, newest first", () => {
    const events = new ActionEvents();
    for (let i = 0; i < 30; i++) events.record("a", `j${i}`, "echo", "succeeded", i);
    events.record("b", "jb", "echo", "failed", 100);
    const a = events.list("a", 100);
    assert.equal(a.length, 20);
    assert.equal(a[0]!.jobId, "j29");
    assert.equal(events.list(undefined, 2)[0]!.worker, "b");
    assert.equal(events.list("nobody", 5).length, 0);
  });
});

// ---- the service over a fake link: the I/O shell of the core, with workers played by functions ----

interface PendingRun {
  worker: string;
  params: { invocation: string; action: string; timeoutMs: number };
  options: CallOptions;
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
}

class FakeFleet {
  readonly clock = new FakeClock();
  readonly registry = new Registry({ clock: this.clock, policy: { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000, missedHeartbeats: 3 } });
  readonly connectedIds = new Set<string>();
  readonly catalogueOf = new Map<string, CatalogEntry[]>();
  readonly runs: PendingRun[] = [];
  readonly cancels: string[] = [];
  lists = 0;
  failLists = false;
  private catalogListener: ((w: string, h: string) => void) | null = null;

  readonly link: WorkerLink = {
    connected: (id) => this.connectedIds.has(id),
    request: ((worker: string, method: string, params: Record<string, unknown>, options: CallOptions) => {
      if (!this.connectedIds.has(worker)) return Promise.reject(new FleetError("E_NOT_CONNECTED", "not connected"));
      if (method === "actions.list") {
        this.lists++;
        if (this.failLists) return Promise.reject(new FleetError("E_TIMEOUT", "no answer"));
        const entries = this.catalogueOf.get(worker) ?? [];
        // Two entries a page, so paging is exercised.
        const from = (params.cursor as number | undefined) ?? 0;
        const next = from + 2 < entries.length ? from + 2 : null;
        return Promise.resolve({ hash: catalogHash(entries), total: entries.length, entries: entries.slice(from, from + 2), next });
      }
      if (method === "actions.cancel") {
        this.cancels.push(params.invocation as string);
        return Promise.resolve({ found: true });
      }
      return new Promise<RunResult>((resolve, reject) => this.runs.push({ worker, params: params as PendingRun["params"], options, resolve, reject }));
    }) as WorkerLink["request"],
  };

  service(extra: Partial<Parameters<typeof createJobService>[0]> = {}): JobManager {
    return createJobService({
      registry: this.registry,
      link: this.link,
      onCatalog: (l) => {
        this.catalogListener = l;
        return () => (this.catalogListener = null);
      },
      clock: this.clock,
      log: silent,
      ...extra,
    });
  }

  connect(id: string, entries: CatalogEntry[] = [entry()], labels: Record<string, string> = {}): void {
    const info: SessionInfo = { id, sessionId: `${id}-s`, hostname: id, agentVersion: "1", labels, platform: { os: "linux", arch: "x64", release: "6" }, address: null, certNotAfter: null };
    this.registry.sessionOpened(info);
    this.connectedIds.add(id);
    this.catalogueOf.set(id, entries);
    this.catalogListener?.(id, catalogHash(entries));
  }

  name(id: string, hash: string): void {
    this.catalogListener?.(id, hash);
  }

  answer(run: PendingRun, over: Partial<RunResult> = {}): void {
    run.resolve({
      status: "succeeded",
      exitCode: 0,
      signal: null,
      startedAt: "2026-01-01T00:00:00.000Z",
      endedAt: "2026-01-01T00:00:00.010Z",
      durationMs: 10,
      stdout: { tail: `hi from ${run.worker}\n`, bytes: 9 + run.worker.length, kept: 9 + run.worker.length },
      stderr: { tail: "", bytes: 0, kept: 0 },
      ...over,
    });
  }
}

const settle = () => new Promise((r) => setImmediate(r));

describe("jobs: the catalogue cache", () => {
  it("many workers naming one hash cost one fetch (of every page); list_actions groups them", async () => {
    const fleet = new FakeFleet();
    const jobs = fleet.service();
    const entries = [entry(), entry({ name: "a" }), entry({ name: "b" }), entry({ name: "c", destructive: true })];
    for (let i = 0; i < 50; i++) fleet.connect(`w${String(i).padStart(2, "0")}`, entries);
    await settle();
    assert.equal(fleet.lists, 2, "one fetch, two pages");
    assert.equal(jobs.catalogues.fetchCount, 1);
    const actions = jobs.listActions({});
    assert.deepEqual(actions.map((a) => [a.name, a.offeredBy.count]), [["a", 50], ["b", 50], ["c", 50], ["echo", 50]]);
    assert.deepEqual(actions[0]!.offeredBy.first, ["w00", "w01", "w02", "w03", "w04", "w05", "w06", "w07", "w08", "w09"]);
    assert.equal(jobs.entry("w07", "c")?.destructive, true);
    for (let i = 0; i < 50; i++) fleet.name(`w${String(i).padStart(2, "0")}`, catalogHash(entries));
    await settle();
    assert.equal(jobs.catalogues.fetchCount, 1, "heartbeats naming the same hash fetch nothing");
  });

  it("a worker naming another's hash but sending something else is kept under its own hash", async () => {
    const fleet = new FakeFleet();
    const jobs = fleet.service();
    const real = [entry()];
    const fake = [entry({ name: "evil" })];
    fleet.connectedIds.add("liar");
    fleet.catalogueOf.set("liar", fake);
    fleet.name("liar", catalogHash(real));
    fleet.connect("honest", real);
    await settle();
    await settle();
    assert.equal(jobs.entry("liar", "evil")?.name, "evil");
    assert.equal(jobs.entry("liar", "echo"), undefined);
    assert.equal(jobs.entry("honest", "echo")?.name, "echo", "the honest worker was fetched in turn");
    assert.equal(jobs.entry("honest", "evil"), undefined);
  });

  it("a failed fetch is tried again when the hash is named next", async () => {
    const fleet = new FakeFleet();
    const jobs = fleet.service();
    fleet.failLists = true;
    fleet.connect("a");
    await settle();
    assert.equal(jobs.entry("a", "echo"), undefined);
    fleet.failLists = false;
    fleet.name("a", catalogHash([entry()]));
    await settle();
    assert.equal(jobs.entry("a", "echo")?.name, "echo");
  });

  it("a catalogue no worker offers any more is released", async () => {
    const fleet = new FakeFleet();
    const cache = new CatalogueCache(fleet.link, silent);
    fleet.connectedIds.add("a");
    fleet.catalogueOf.set("a", [entry()]);
    cache.noteNamed("a", catalogHash([entry()]));
    await settle();
    assert.ok(cache.of("a"));
    cache.forget("a");
    assert.equal(cache.of("a"), undefined);
    assert.equal(cache["catalogues"].size, 0);
  });
});

describe("jobs: the service", () => {
  async function fleetOf(n: number, extra: Partial<Parameters<typeof createJobService>[0]> = {}) {
    const fleet = new FakeFleet();
    const jobs = fleet.service(extra);
    for (let i = 0; i < n; i++) fleet.connect(`w${i}`);
    await settle();
    return { fleet, jobs };
  }
  const client = { name: "test", version: "1" };

  it("runs a job under max_concurrency, with one listener call per ending and a wait that ends with the job", async () => {
    const { fleet, jobs } = await fleetOf(6);
    const plan = jobs.plan({ action: "echo", arguments: { text: "hi" }, target: { all: true }, maxConcurrency: 2 });
    assert.ok(!("code" in plan));
    const view = jobs.start(plan, client);
    assert.equal(view.status, "running");
    const ended: string[] = [];
    jobs.onInvocationEnded(view.id, (inv, summary) => ended.push(`${inv.worker}:${summary.counts.succeeded}`));
    const waited = jobs.waitFor(view.id, 60_000);
    let most = 0;
    while (fleet.runs.length > 0) {
      most = Math.max(most, fleet.runs.length);
      const run = fleet.runs.shift()!;
      assert.equal(run.options.timeoutMs, 30_000 + 10_000);
      run.options.onProgress?.({ type: "progress", id: 1, progress: 1, output: { stream: "stdout", data: `out ${run.worker}` } });
      fleet.answer(run);
      await settle();
    }
    await waited;
    assert.equal(most, 2);
    const done = jobs.get(view.id)!;
    assert.equal(done.status, "succeeded");
    assert.equal(done.counts.succeeded, 6);
    assert.equal(ended.length, 6);
    assert.deepEqual(jobs.output(view.id, "w3"), { stdout: "out w3", stderr: "", truncated: false });
    assert.equal(jobs.recent()[0]!.id, view.id);
    assert.equal(jobs.actionEvents("w1", 5)[0]!.status, "succeeded");
    assert.equal(jobs.output(view.id, "nobody"), undefined);
  });

  it("a worker not connected at its turn is undeliverable, one whose session ends mid-run is lost; the others succeed", async () => {
    const { fleet, jobs } = await fleetOf(4);
    fleet.connectedIds.delete("w2");
    const plan = jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true }, maxConcurrency: 4, maxErrors: 4 }) as Plan;
    const view = jobs.start(plan, client);
    await settle();
    assert.equal(fleet.runs.length, 3);
    for (const run of fleet.runs.splice(0)) {
      if (run.worker === "w1") run.reject(new FleetError("E_NOT_CONNECTED", "worker w1 disconnected"));
      else fleet.answer(run);
    }
    await jobs.waitFor(view.id, 1000);
    const byWorker = Object.fromEntries(jobs.get(view.id)!.invocations.map((i) => [i.worker, i.status]));
    assert.deepEqual(byWorker, { w0: "succeeded", w1: "lost", w2: "undeliverable", w3: "succeeded" });
    assert.equal(jobs.get(view.id)!.status, "succeeded", "2 errors within max_errors 4");
  });

  it("cancel: pending ones are cancelled at once, running ones are asked to stop", async () => {
    const { fleet, jobs } = await fleetOf(5);
    const view = jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true }, maxConcurrency: 2 }) as Plan, client);
    await settle();
    assert.equal(jobs.cancel(view.id), true);
    await settle();
    assert.equal(fleet.cancels.length, 2);
    assert.equal(jobs.get(view.id)!.counts.cancelled, 3);
    for (const run of fleet.runs.splice(0)) fleet.answer(run, { status: "cancelled", exitCode: null, signal: "SIGTERM" });
    await jobs.waitFor(view.id, 1000);
    assert.equal(jobs.get(view.id)!.status, "cancelled");
    assert.equal(jobs.cancel(view.id), false, "not running any more");
    assert.equal(jobs.cancel("job-nope"), false);
  });

  it("the fleet-wide and per-worker caps hold over several jobs", async () => {
    const { fleet, jobs } = await fleetOf(3, { limits: { maxInFlight: 4, maxPerWorker: 1 } });
    for (let j = 0; j < 3; j++) jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true }, maxConcurrency: 3 }) as Plan, client);
    await settle();
    for (let step = 0; step < 20 && fleet.runs.length > 0; step++) {
      assert.ok(fleet.runs.length <= 3, "at most one per worker, three workers");
      assert.equal(new Set(fleet.runs.map((r) => r.worker)).size, fleet.runs.length);
      fleet.answer(fleet.runs.shift()!);
      await settle();
    }
    assert.ok(jobs.recent().every((j) => j.status === "succeeded"));
  });

  it("limits left undefined keep their defaults (as the manager passes them when no flag is given)", async () => {
    const { fleet, jobs } = await fleetOf(1, { limits: { maxInFlight: undefined, maxPerWorker: undefined } });
    jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true } }) as Plan, client);
    await settle();
    assert.equal(fleet.runs.length, 1);
  });

  it("a definition that changed between plan and start is not run", async () => {
    const { fleet, jobs } = await fleetOf(2);
    const plan = jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true } }) as Plan;
    fleet.connect("w1", [entry({ destructive: true })]);
    await settle();
    const view = jobs.start(plan, client);
    assert.equal(view.invocations.find((i) => i.worker === "w1")!.error, "E_DEFINITION_CHANGED");
  });

  it("audits a job's start and end as JSON lines", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ name: "test", level: "info", destination: { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
    const { fleet, jobs } = await fleetOf(1, { log });
    const view = jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { workerId: "w0" } }) as Plan, client);
    await settle();
    fleet.answer(fleet.runs.shift()!);
    await jobs.waitFor(view.id, 1000);
    const audit = lines.filter((l) => l.audit === "job");
    assert.equal(audit.length, 2);
    assert.deepEqual(audit.map((l) => l.status), ["running", "succeeded"]);
    assert.deepEqual(audit[1]!.client, client);
    assert.deepEqual(audit[1]!.arguments, { text: "x" });
    assert.equal(audit[1]!.targets, 1);
    assert.equal(audit[1]!.jobId, view.id);
    assert.ok(audit[1]!.endedAt);
  });

  it("stopping ends running jobs (lost / cancelled); a restored history holds them ended, with their tails and events", async () => {
    const { fleet, jobs } = await fleetOf(3);
    const done = jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { workerId: "w0" } }) as Plan, client);
    await settle();
    fleet.answer(fleet.runs.shift()!);
    await jobs.waitFor(done.id, 1000);
    const running = jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true }, maxConcurrency: 1 }) as Plan, client);
    await settle();
    const saved = JSON.parse(JSON.stringify(jobs.export())) as unknown;
    jobs.stop();
    const stopped = jobs.get(running.id)!;
    assert.deepEqual([stopped.counts.lost, stopped.counts.cancelled, stopped.status], [1, 2, "failed"]);

    // As after a crash: the saved state still says running.
    const again = fleet.service({ restored: saved });
    const restored = again.get(running.id)!;
    assert.deepEqual([restored.counts.lost, restored.counts.cancelled, restored.status], [1, 2, "failed"]);
    assert.equal(restored.invocations[0]!.error, "E_MANAGER_RESTARTED");
    const first = again.get(done.id)!;
    assert.equal(first.status, "succeeded");
    assert.equal(first.invocations[0]!.stdout.tail, "hi from w0\n");
    assert.deepEqual(again.output(done.id, "w0"), { stdout: "hi from w0\n", stderr: "", truncated: false }, "kept output is not persisted: the tail is what is left");
    assert.ok(again.actionEvents("w0", 5).length >= 1);
  });

  it("too many running jobs: plan says E_TOO_BUSY", async () => {
    const { jobs } = await fleetOf(1);
    for (let i = 0; i < 100; i++) jobs.start(jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true } }) as Plan, client);
    assert.equal((jobs.plan({ action: "echo", arguments: { text: "x" }, target: { all: true } }) as PlanError).code, "E_TOO_BUSY");
    assert.throws(() => jobs.start({} as Plan, client), (e: { code?: string }) => e.code === "E_TOO_BUSY");
  });
});
