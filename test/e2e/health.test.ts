import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts, type CertSet } from "../helpers/fleet.js";
import type { Proc } from "../helpers/processes.js";

describe("worker health as the manager sees it (real processes, mTLS on loopback)", () => {
  const fx = useCerts("health", ["w1", "w2", "w3"], { before, after });
  let certs: CertSet;
  let manager: ManagerProc;
  const workers = new Map<string, Proc>();

  before(async () => {
    certs = fx.certs;
    manager = await ManagerProc.start(certs);
  });

  it("three workers are healthy within 3 s of starting", async (t) => {
    const started = performance.now();
    for (const id of ["w1", "w2", "w3"]) workers.set(id, startWorker(certs, id, manager.url));
    for (const id of ["w1", "w2", "w3"]) {
      const tr = await manager.waitForState(id, "healthy", 3000);
      assert.ok(tr.receivedAt - started < 3000, `${id} healthy after ${Math.round(tr.receivedAt - started)} ms`);
      t.diagnostic(`${id} healthy ${Math.round(tr.receivedAt - started)} ms after start`);
    }
  });

  it("SIGKILL: unhealthy within 1 s, reason connection lost", async (ctx) => {
    const from = manager.lines.length;
    const sent = performance.now();
    workers.get("w1")!.kill("SIGKILL");
    const t = await manager.waitForState("w1", "unhealthy", 1000, from);
    assert.equal(t.reasons[0]?.code, "connection_lost");
    assert.match(t.reasons[0]!.message, /connection lost/);
    assert.ok(t.receivedAt - sent < 1000);
    ctx.diagnostic(`SIGKILL → unhealthy in ${Math.round(t.receivedAt - sent)} ms`);
  });

  it("SIGSTOP: unhealthy within 3 intervals + 1 s (heartbeats missed); SIGCONT: healthy within 2 s", async (ctx) => {
    const w2 = workers.get("w2")!;
    let from = manager.lines.length;
    const stopped = performance.now();
    w2.kill("SIGSTOP");
    try {
      const t = await manager.waitForState("w2", "unhealthy", 3 * 1000 + 1000, from);
      assert.equal(t.reasons[0]?.code, "heartbeats_missed");
      assert.ok(t.receivedAt - stopped >= 2000, "not before the bound could have passed");
      ctx.diagnostic(`SIGSTOP → unhealthy in ${Math.round(t.receivedAt - stopped)} ms`);
    } finally {
      from = manager.lines.length;
      w2.kill("SIGCONT");
    }
    const resumed = performance.now();
    const back = await manager.waitForState("w2", "healthy", 2000, from);
    assert.ok(back.receivedAt - resumed < 2000);
    ctx.diagnostic(`SIGCONT → healthy in ${Math.round(back.receivedAt - resumed)} ms`);
    // It kept its session: no reconnect was needed.
    assert.ok(!manager.lines.slice(from).some((l) => l.msg === "worker connected" && l.worker === "w2"));
  });

  it("SIGTERM: offline within 1 s (reason goodbye), and the process exits 0", async (ctx) => {
    const w3 = workers.get("w3")!;
    const from = manager.lines.length;
    const sent = performance.now();
    w3.kill("SIGTERM");
    const t = await manager.waitForState("w3", "offline", 1000, from);
    assert.equal(t.reasons[0]?.code, "goodbye");
    assert.ok(t.receivedAt - sent < 1000);
    ctx.diagnostic(`SIGTERM → offline in ${Math.round(t.receivedAt - sent)} ms`);
    const exit = await w3.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    // Offline is final for this session: no "connection lost" after the goodbye.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(manager.state("w3"), "offline");
  });

  it("the surviving worker stayed healthy throughout", () => {
    // w2 went through its own SIGSTOP cycle; w3 and w1 ended; what each did is in its own test. Here: the
    // manager never logged an error, and served every transition in order.
    assert.ok(!manager.lines.some((l) => l.level === "error" || l.level === "fatal"), "no errors in the manager log");
    assert.equal(manager.state("w2"), "healthy");
  });
});
