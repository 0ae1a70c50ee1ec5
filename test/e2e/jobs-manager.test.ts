import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebSocket } from "ws";
import type { Plan } from "../../src/jobs/api.js";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { CatalogEntry, catalogHash, MAX_KEPT_OUTPUT_BYTES, TAIL_BYTES, type RunResult } from "../../src/protocol/actions.js";
import { useCerts } from "../helpers/fleet.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

/**
 * The manager's job machinery over real mTLS sessions. The manager runs in this process; each worker is played by
 * the raw protocol client, which answers actions.list and actions.run itself, so the test sees exactly what the
 * manager sends, when, and how many at once.
 */

const ENTRIES = [
  CatalogEntry.parse({ name: "echo", kind: "command", description: "Echo", destructive: false, params: { text: { type: "string" } }, timeoutMs: 30_000, concurrency: 4 }),
  CatalogEntry.parse({ name: "uptime", kind: "command", description: "Uptime", destructive: false, timeoutMs: 5_000, concurrency: 4 }),
];
const HASH = catalogHash(ENTRIES);

type RunMessage = { id: number; params: { invocation: string; action: string; timeoutMs: number } };

interface FakeWorker {
  ws: WebSocket;
  lists: number;
  runs: number;
}

/** A worker's behaviour when asked to run something: answer now, later, never, or close the socket. */
type OnRun = (msg: RunMessage, ws: WebSocket) => void;

const until = async (what: string, ok: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function result(over: Partial<RunResult> = {}): RunResult {
  const now = new Date().toISOString();
  return { status: "succeeded", exitCode: 0, signal: null, startedAt: now, endedAt: now, durationMs: 5, stdout: { tail: "ok\n", bytes: 3, kept: 3 }, stderr: { tail: "", bytes: 0, kept: 0 }, ...over };
}

const respond = (ws: WebSocket, id: number, r: unknown) => ws.send(JSON.stringify({ type: "response", id, result: r }));

describe("jobs in the manager, over real sessions", () => {
  const ids = ["w1", "w2", "w3", "w4", "w5", "w6", "gone", "dying", "loud"];
  const fx = useCerts("jobs-manager", ids, { before, after });
  let manager: Manager;
  let stateFile: string;
  const workers = new Map<string, FakeWorker>();
  const onRun = new Map<string, OnRun>();
  const client = { name: "jobs-e2e", version: "1" };
  const log = createLogger({ name: "manager", level: (process.env.JOBS_LOG as "debug") ?? "silent" });

  const start = (state: string) =>
    startManager({
      tls: { ca: fx.certs.ca, cert: fx.certs.managerCert, key: fx.certs.managerKey },
      host: "127.0.0.1",
      port: 0,
      // Raw clients send no heartbeats: a long interval keeps their sessions from being swept meanwhile.
      heartbeatIntervalMs: 10_000,
      missedHeartbeats: 3,
      stateFile: state,
      // The loud worker streams a megabyte of output frames, more than a session's default message rate.
      limits: { messagesPerSecond: 10_000, messageBurst: 40_000 },
      log,
    });

  function connect(id: string): FakeWorker {
    const fake = { lists: 0, runs: 0 } as FakeWorker;
    const raw = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker(id) }, (ws) => {
      ws.send(JSON.stringify({ ...helloFor(id), catalog: HASH }));
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data)) as { type: string; id: number; method?: string; params?: Record<string, unknown> };
        if (msg.type !== "request") return;
        if (msg.method === "actions.list") {
          fake.lists++;
          respond(ws, msg.id, { hash: HASH, total: ENTRIES.length, entries: ENTRIES, next: null });
        } else if (msg.method === "actions.run") {
          fake.runs++;
          (onRun.get(id) ?? ((m: RunMessage, s: WebSocket) => respond(s, m.id, result())))(msg as unknown as RunMessage, ws);
        } else if (msg.method === "actions.cancel") {
          respond(ws, msg.id, { found: false });
        }
      });
    });
    fake.ws = raw.ws;
    workers.set(id, fake);
    return fake;
  }

  const run = async (plan: Plan | { code: string }) => {
    assert.ok(!("code" in plan), JSON.stringify(plan));
    const view = manager.jobs.start(plan, client);
    await manager.jobs.waitFor(view.id, 15_000);
    return manager.jobs.get(view.id)!;
  };

  before(async () => {
    stateFile = join(fx.dir, "state.json");
    manager = await start(stateFile);
    for (const id of ids) connect(id);
    await until("every worker offers the catalogue", () => manager.jobs.listActions({}).find((a) => a.name === "echo")?.offeredBy.count === ids.length);
    // `gone` was connected (so its catalogue is known) and is not any more: its turn will find it not connected.
    workers.get("gone")!.ws.close();
    await until("gone is disconnected", () => !manager.connected("gone"));
  });

  after(async () => {
    for (const w of workers.values()) w.ws.terminate();
    await manager?.close();
  });

  it("one catalogue fetch serves every worker naming the same hash", () => {
    const fetches = [...workers.values()].reduce((n, w) => n + w.lists, 0);
    assert.equal(fetches, 1);
    const echo = manager.jobs.listActions({}).find((a) => a.name === "echo")!;
    assert.deepEqual(echo.offeredBy.first.slice(0, 3), ["dying", "gone", "loud"]);
    assert.equal(manager.jobs.listActions({ workerId: "w3" }).length, 2);
  });

  it("max_concurrency 2 over 6 workers: never more than 2 runs outstanding", async () => {
    let outstanding = 0;
    let most = 0;
    for (const id of ["w1", "w2", "w3", "w4", "w5", "w6"]) {
      onRun.set(id, (msg, ws) => {
        most = Math.max(most, ++outstanding);
        setTimeout(() => {
          outstanding--;
          respond(ws, msg.id, result({ stdout: { tail: `${id} says ${msg.params.action}\n`, bytes: 12, kept: 12 } }));
        }, 80);
      });
    }
    const job = await run(manager.jobs.plan({ action: "echo", arguments: { text: "hi" }, target: { workerIds: ["w1", "w2", "w3", "w4", "w5", "w6"] }, maxConcurrency: 2 }));
    for (const id of ["w1", "w2", "w3", "w4", "w5", "w6"]) onRun.delete(id);
    assert.equal(job.status, "succeeded");
    assert.equal(job.counts.succeeded, 6);
    assert.equal(most, 2);
    assert.equal(job.invocations.find((i) => i.worker === "w4")!.stdout.tail, "w4 says echo\n");
  });

  it("a worker whose socket closes mid-run is lost, one not connected is undeliverable, the others succeed", async () => {
    onRun.set("dying", (_msg, ws) => ws.terminate());
    const job = await run(manager.jobs.plan({ action: "uptime", arguments: {}, target: { workerIds: ["w1", "dying", "gone", "w2"] }, maxConcurrency: 4, maxErrors: 4 }));
    const status = Object.fromEntries(job.invocations.map((i) => [i.worker, i.status]));
    assert.deepEqual(status, { dying: "lost", gone: "undeliverable", w1: "succeeded", w2: "succeeded" });
    assert.deepEqual(manager.jobs.actionEvents("dying", 5).map((e) => e.status), ["lost"]);
  });

  it("output frames are kept up to 1 MiB per invocation; the tail and the total come from the result", async () => {
    onRun.set("loud", (msg, ws) => {
      let sent = 0;
      for (let i = 0; i < 140; i++) {
        const data = String.fromCharCode(97 + (i % 26)).repeat(8192);
        sent += data.length;
        ws.send(JSON.stringify({ type: "progress", id: msg.id, progress: sent, output: { stream: i % 10 === 9 ? "stderr" : "stdout", data } }));
      }
      const tail = "z".repeat(TAIL_BYTES);
      respond(ws, msg.id, result({ stdout: { tail, bytes: 5 * 1024 * 1024, kept: MAX_KEPT_OUTPUT_BYTES - 8192 * 14 }, stderr: { tail: "", bytes: 8192 * 14, kept: 8192 * 14 } }));
    });
    const job = await run(manager.jobs.plan({ action: "uptime", arguments: {}, target: { workerId: "loud" } }));
    const inv = job.invocations[0]!;
    assert.equal(inv.status, "succeeded");
    assert.deepEqual(inv.stdout, { tail: "z".repeat(TAIL_BYTES), bytes: 5 * 1024 * 1024, truncated: true });
    const kept = manager.jobs.output(job.id, "loud")!;
    const size = Buffer.byteLength(kept.stdout) + Buffer.byteLength(kept.stderr);
    assert.ok(size <= MAX_KEPT_OUTPUT_BYTES, `kept ${size}`);
    assert.ok(size >= MAX_KEPT_OUTPUT_BYTES - 8192, `kept ${size}`);
    assert.equal(kept.truncated, true);
    assert.ok(kept.stdout.startsWith("a".repeat(8192) + "b"));
  });

  it("jobs survive a manager restart with the same state file; one running at the stop is ended, not left running", async () => {
    onRun.set("w3", () => {});
    const plan = manager.jobs.plan({ action: "echo", arguments: { text: "slow" }, target: { workerIds: ["w3", "w5"] }, maxConcurrency: 1 });
    assert.ok(!("code" in plan));
    const running = manager.jobs.start(plan, client);
    await until("w3 runs it", () => workers.get("w3")!.runs > 1);
    const before = manager.jobs.recent();
    await manager.close();
    for (const w of workers.values()) w.ws.terminate();

    manager = await start(stateFile);
    const after = manager.jobs.recent();
    assert.deepEqual(after.map((j) => j.id), before.map((j) => j.id));
    for (const j of after.filter((j) => j.id !== running.id)) {
      const was = before.find((b) => b.id === j.id)!;
      assert.deepEqual([j.status, j.counts, j.client, j.arguments], [was.status, was.counts, was.client, was.arguments]);
    }
    const ended = manager.jobs.get(running.id)!;
    assert.equal(ended.status, "failed");
    assert.deepEqual([ended.counts.lost, ended.counts.cancelled], [1, 1]);
    assert.equal(ended.invocations.find((i) => i.worker === "w3")!.error, "E_MANAGER_STOPPED");
    const loud = after.find((j) => j.action === "uptime" && j.targets === 1)!;
    assert.equal(manager.jobs.output(loud.id, "loud")!.stdout, "z".repeat(TAIL_BYTES), "after a restart only the tail is left");
    assert.ok(manager.jobs.actionEvents("dying", 5).length >= 1, "action events come back with the jobs");
  });
});
