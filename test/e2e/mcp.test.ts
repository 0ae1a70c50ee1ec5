import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { sleep, type Proc } from "../helpers/processes.js";
import type { FullStatus } from "../../src/protocol/status.js";

type Worker = { id: string; state: string; reasons: Array<{ code: string; message: string }>; connected: boolean };

describe("the manager over MCP (SDK Client over stdio, real workers)", () => {
  const fx = useCerts("mcp", ["m1", "m2", "m3"], { before, after });
  let mcp: McpManager;
  const workers = new Map<string, Proc>();

  before(async () => {
    mcp = await McpManager.start(fx.certs, ["--request-timeout", "2s"]);
    for (const id of ["m1", "m2", "m3"]) workers.set(id, startWorker(fx.certs, id, mcp.url));
    for (const id of ["m1", "m2", "m3"]) await mcp.waitForWorker(id, (w) => w.state === "healthy", 10_000);
  });
  after(() => mcp?.kill());

  it("offers the fixed tool set, read-only but for forget_worker, run_action, cancel_job and the join decisions, each with an output schema", async () => {
    const { tools } = await mcp.client.listTools();
    const acting = ["approve_join", "cancel_job", "deny_join", "forget_worker", "run_action"];
    assert.deepEqual(tools.map((t) => t.name).sort(), [
      "approve_join",
      "cancel_job",
      "deny_join",
      "forget_worker",
      "get_all_workers_status",
      "get_fleet_summary",
      "get_job",
      "get_worker_events",
      "get_worker_status",
      "list_actions",
      "list_join_requests",
      "list_workers",
      "run_action",
    ]);
    for (const t of tools) {
      assert.equal(t.annotations?.readOnlyHint, !acting.includes(t.name), `${t.name} is read-only unless it acts`);
      assert.ok(t.outputSchema, `${t.name} declares an output schema`);
      assert.ok((t.description ?? "").length > 40, `${t.name} describes itself`);
    }
  });

  it("the whole tools/list stays under 32 KB", async () => {
    const listed = await mcp.client.listTools();
    const size = JSON.stringify(listed).length;
    assert.ok(size < 32 * 1024, `tools/list is ${size} characters`);
  });

  it("list_workers shows the three workers healthy in compact rows, with counts by state", async () => {
    const r = await mcp.ok<{ workers: Array<Record<string, unknown>>; total: number; counts: Record<string, number>; fleet: Record<string, number>; nextCursor: string | null }>("list_workers");
    assert.equal(r.total, 3);
    assert.deepEqual(r.counts, { healthy: 3, degraded: 0, unhealthy: 0, offline: 0, total: 3 });
    assert.deepEqual(r.fleet, r.counts);
    assert.equal(r.nextCursor, null);
    for (const w of r.workers) {
      assert.deepEqual(Object.keys(w), ["id", "state", "reasons", "connected", "lastHeartbeatAgeMs", "labels"]);
      assert.equal(w.state, "healthy");
      assert.equal(w.connected, true);
      assert.ok((w.lastHeartbeatAgeMs as number) < 3000);
    }
    const filtered = await mcp.ok<{ total: number; counts: { total: number }; fleet: { healthy: number } }>("list_workers", { state: "unhealthy" });
    assert.deepEqual([filtered.total, filtered.counts.total, filtered.fleet.healthy], [0, 0, 3], "counts of the matching workers and of the whole fleet");
  });

  it("list_workers pages with limit and cursor", async () => {
    const first = await mcp.ok<{ workers: Worker[]; nextCursor: string | null; total: number }>("list_workers", { limit: 2 });
    assert.deepEqual([first.workers.length, first.total], [2, 3]);
    assert.ok(first.nextCursor);
    const second = await mcp.ok<{ workers: Worker[]; nextCursor: string | null }>("list_workers", { limit: 2, cursor: first.nextCursor });
    assert.deepEqual([...first.workers, ...second.workers].map((w) => w.id).sort(), ["m1", "m2", "m3"]);
    assert.equal(second.nextCursor, null);
  });

  it("get_worker_status {fresh: false}: the manager's observations, and the worker's own claims under reported", async () => {
    const r = await mcp.ok<{ source: string; worker: Record<string, unknown> & { reported: Record<string, unknown> } }>("get_worker_status", { worker_id: "m1", fresh: false });
    assert.equal(r.source, "heartbeat");
    assert.deepEqual(r.worker.addresses, ["127.0.0.1"]);
    assert.ok(Date.parse(r.worker.connectedSince as string) > 0);
    assert.equal(r.worker.reported.agentVersion, "0.1.0");
    assert.equal(typeof r.worker.reported.hostname, "string");
    assert.deepEqual(Object.keys(r.worker.reported), ["hostname", "agentVersion", "labels", "platform"]);
    const { tools } = await mcp.client.listTools();
    // The events, forget_worker, cancel_job and the join decisions answer only what the manager itself observed and decided.
    const managersOwn = ["get_worker_events", "forget_worker", "cancel_job", "approve_join", "deny_join"];
    for (const t of tools.filter((x) => !managersOwn.includes(x.name))) {
      assert.match(t.description ?? "", /[Rr]eported by the (worker|joining host)|summed from what the workers report/, `${t.name} says which fields are the worker's claims`);
    }
  });

  it("get_worker_status asks the worker now: CPU, memory, filesystems and OS", async () => {
    const r = await mcp.ok<{ source: string; stale: boolean; status: FullStatus }>("get_worker_status", { worker_id: "m1" });
    assert.equal(r.source, "worker");
    assert.equal(r.stale, false);
    assert.ok((r.status.cpu?.cores ?? 0) > 0);
    assert.ok((r.status.load?.perCore.length ?? 0) > 0);
    assert.ok((r.status.memory?.total ?? 0) > 0);
    assert.ok((r.status.filesystems?.length ?? 0) > 0);
    assert.ok(r.status.os?.kernel);
    assert.ok(Date.now() - Date.parse(r.status.collectedAt) < 10_000);
  });

  it("get_all_workers_status {fresh: true} asks all three in parallel and reports progress as they answer", async () => {
    const progress: number[] = [];
    const r = (await mcp.client.callTool(
      { name: "get_all_workers_status", arguments: { fresh: true } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    )) as unknown as { structuredContent: { counts: Record<string, number>; workers: Array<{ id: string; status: unknown; error: string | null }> } };
    const s = r.structuredContent;
    assert.equal(s.counts.healthy, 3);
    assert.equal(s.workers.length, 3);
    for (const w of s.workers) {
      assert.equal(w.error, null, `${w.id}: ${w.error}`);
      assert.ok(w.status, `${w.id} answered`);
    }
    // One progress per answer as it arrives; the last answer is announced by the result itself.
    assert.deepEqual(progress, [1, 2]);
  });

  it("get_all_workers_status pages with a cursor, problem workers first", async () => {
    const first = await mcp.ok<{ workers: Worker[]; nextCursor: string | null; counts: { total: number } }>("get_all_workers_status", { limit: 2 });
    assert.equal(first.workers.length, 2);
    assert.equal(first.counts.total, 3);
    assert.ok(first.nextCursor);
    const second = await mcp.ok<{ workers: Worker[]; nextCursor: string | null }>("get_all_workers_status", { limit: 2, cursor: first.nextCursor });
    assert.equal(second.workers.length, 1);
    assert.equal(second.nextCursor, null);
    assert.deepEqual([...first.workers, ...second.workers].map((w) => w.id).sort(), ["m1", "m2", "m3"]);
  });

  it("invalid input and an unknown worker_id are isError results that say what was wrong; the next call works", async () => {
    const bad = await mcp.call("get_all_workers_status", { limit: -1 });
    assert.equal(bad.isError, true);
    assert.match((bad.content[0] as { text: string }).text, /limit must be between 1 and 500/);

    const unknown = await mcp.call("get_worker_status", { worker_id: "m4" });
    assert.equal(unknown.isError, true);
    assert.match((unknown.content[0] as { text: string }).text, /Unknown worker_id "m4"\. Closest known ids: m1, m2, m3/);

    const wrongState = await mcp.call("list_workers", { state: "sleepy" });
    assert.equal(wrongState.isError, true);
    assert.match((wrongState.content[0] as { text: string }).text, /state must be one of healthy, degraded, unhealthy, offline/);

    const badCursor = await mcp.call("get_all_workers_status", { cursor: "nonsense" });
    assert.equal(badCursor.isError, true);
    assert.match((badCursor.content[0] as { text: string }).text, /cursor "nonsense" is not one this server issued/);

    const fine = await mcp.ok<{ total: number }>("list_workers");
    assert.equal(fine.total, 3);
  });

  it("resources: fleet://workers and fleet://workers/{id} can be listed and read", async () => {
    const { resources } = await mcp.client.listResources();
    const uris = resources.map((r) => r.uri);
    for (const uri of ["fleet://workers", "fleet://workers/m1", "fleet://workers/m2", "fleet://workers/m3"]) assert.ok(uris.includes(uri), uri);
    const all = await mcp.client.readResource({ uri: "fleet://workers" });
    assert.equal(JSON.parse((all.contents[0] as { text: string }).text).total, 3);
    const one = await mcp.client.readResource({ uri: "fleet://workers/m1" });
    assert.equal(JSON.parse((one.contents[0] as { text: string }).text).worker.state, "healthy");
    await assert.rejects(mcp.client.readResource({ uri: "fleet://workers/nope" }), /Unknown worker_id "nope"/);
  });

  it("a frozen worker: partial results with its own error, a stale single status, and cancelling stops the call", async () => {
    const m3 = workers.get("m3")!;
    m3.kill("SIGSTOP");
    try {
      let t = performance.now();
      const all = await mcp.ok<{ workers: Array<{ id: string; status: unknown; error: string | null }> }>("get_all_workers_status", { fresh: true });
      const byId = new Map(all.workers.map((w) => [w.id, w]));
      assert.ok(byId.get("m1")!.status && byId.get("m2")!.status, "the others answered");
      assert.equal(byId.get("m3")!.status, null);
      assert.match(byId.get("m3")!.error!, /no answer to status\.snapshot within 2000 ms/);
      assert.ok(performance.now() - t < 4000, "asked in parallel, bounded by the request timeout");

      const one = await mcp.ok<{ stale: boolean; staleReason: string; source: string }>("get_worker_status", { worker_id: "m3" });
      assert.deepEqual([one.source, one.stale], ["heartbeat", true]);
      assert.match(one.staleReason, /did not answer: no answer to status\.snapshot within 2000 ms/);

      const cancel = new AbortController();
      setTimeout(() => cancel.abort(), 300);
      t = performance.now();
      await assert.rejects(
        mcp.client.callTool({ name: "get_all_workers_status", arguments: { fresh: true } }, undefined, { signal: cancel.signal }),
        /abort/i,
      );
      assert.ok(performance.now() - t < 1500, "the call ended when the client cancelled");
      const list = await mcp.ok<{ total: number }>("list_workers");
      assert.equal(list.total, 3, "and the manager answers the next call");
    } finally {
      m3.kill("SIGCONT");
    }
    await mcp.waitForWorker("m3", (w) => w.state === "healthy", 5000);
  });

  it("after SIGKILL: list_workers shows unhealthy; a warning and a coalesced resource update arrive", async () => {
    await mcp.client.subscribeResource({ uri: "fleet://workers/m2" });
    await mcp.client.subscribeResource({ uri: "fleet://workers" });
    const loggingBefore = mcp.logging.length;
    const updatesBefore = mcp.updated.length;
    workers.get("m2")!.kill("SIGKILL");
    await mcp.waitForWorker("m2", (w) => w.state === "unhealthy", 2000);
    const { workers: list } = await mcp.ok<{ workers: Array<{ id: string; reasons: string[] }> }>("list_workers");
    assert.equal(list[0]!.id, "m2", "problem workers first");
    assert.deepEqual(list[0]!.reasons, ["connection_lost"], "reason codes; the messages are in get_worker_status");

    await sleep(600); // the coalescing window is 250 ms
    const warnings = mcp.logging.slice(loggingBefore).filter((l) => (l.data as { worker?: string }).worker === "m2");
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.level, "warning");
    assert.match((warnings[0]!.data as { message: string }).message, /worker m2 is unhealthy: connection lost/);
    const updates = mcp.updated.slice(updatesBefore).map((u) => u.uri).sort();
    assert.deepEqual(updates, ["fleet://workers", "fleet://workers/m2"], "one update per subscribed resource");

    // Heartbeats from the others do not produce updates.
    await sleep(2000);
    assert.equal(mcp.updated.length, updatesBefore + 2);
  });

  it("get_fleet_summary and get_worker_events tell the story", async () => {
    const s = await mcp.ok<{ counts: Record<string, number>; connected: number; totalCores: number; totalMemoryBytes: number; recentTransitions: Array<{ worker: string; to: string }>; underPressure: unknown[] }>("get_fleet_summary");
    assert.deepEqual(s.counts, { healthy: 2, degraded: 0, unhealthy: 1, offline: 0, total: 3 });
    assert.equal(s.connected, 2);
    assert.ok(s.totalCores > 0 && s.totalMemoryBytes > 0);
    assert.equal(s.underPressure.length, 2);
    assert.deepEqual(s.recentTransitions.at(-1), { ...s.recentTransitions.at(-1), worker: "m2", to: "unhealthy" });

    const ev = await mcp.ok<{ events: Array<{ worker: string; from: string | null; to: string }> }>("get_worker_events", { worker_id: "m2", since: "5m" });
    assert.deepEqual(ev.events.map((e) => [e.from, e.to]), [[null, "healthy"], ["healthy", "unhealthy"]]);
    const badSince = await mcp.call("get_worker_events", { since: "yesterday-ish" });
    assert.equal(badSince.isError, true);

    // Paged from the newest back: the pages together are the whole history, each oldest first.
    type Events = { events: Array<{ seq: number }>; nextCursor: string | null };
    const all = await mcp.ok<Events>("get_worker_events", { limit: 500 });
    assert.ok(all.events.length >= 4 && all.nextCursor === null);
    const seen: number[][] = [];
    let cursor: string | null | undefined;
    do {
      const p: Events = await mcp.ok<Events>("get_worker_events", { limit: 2, ...(cursor ? { cursor } : {}) });
      seen.unshift(p.events.map((e) => e.seq));
      cursor = p.nextCursor;
    } while (cursor);
    assert.deepEqual(seen.flat(), all.events.map((e) => e.seq));
  });

  it("get_worker_status for a lost worker returns its last heartbeat, marked stale, with the reason", async () => {
    const r = await mcp.ok<{ source: string; stale: boolean; staleReason: string; metrics: unknown }>("get_worker_status", { worker_id: "m2" });
    assert.equal(r.source, "heartbeat");
    assert.equal(r.stale, true);
    assert.match(r.staleReason, /not connected \(unhealthy: connection lost/);
  });

  it("wrote nothing but JSON-RPC to stdout, and ends within 2 s with exit 0 when stdin closes", async () => {
    assert.deepEqual(mcp.protocolErrors, []);
    const t = performance.now();
    await mcp.close();
    const { code } = await mcp.exited;
    assert.equal(code, 0);
    assert.ok(performance.now() - t < 2000, `exited after ${Math.round(performance.now() - t)} ms`);
  });
});
