import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { sleep, type Proc } from "../helpers/processes.js";

/** Fixed decision 3 (docs/architecture.md): the manager's clock decides health, and a pause of the manager itself is not the workers' fault. */
describe("the manager paused for 60 s (SIGSTOP) and resumed", () => {
  const live = ["s1", "s2", "s3"];
  const fx = useCerts("stall", [...live, "victim"], { before, after });
  let manager: ManagerProc;
  const workers = new Map<string, Proc>();

  before(async () => {
    manager = await ManagerProc.start(fx.certs);
    for (const id of [...live, "victim"]) workers.set(id, startWorker(fx.certs, id, manager.url));
    // Setup, not the assertion: a generous bound, since another test file may be starting its processes too.
    for (const id of [...live, "victim"]) await manager.waitForState(id, "healthy", 30_000);
  });

  it("marks no live worker unhealthy; one killed during the stall is unhealthy within two intervals of resuming", async (t) => {
    const from = manager.lines.length;
    manager.kill("SIGSTOP");
    try {
      await sleep(30_000);
      workers.get("victim")!.kill("SIGKILL");
      await sleep(30_000);
    } finally {
      manager.kill("SIGCONT");
    }
    const resumed = performance.now();
    const lost = await manager.waitForState("victim", "unhealthy", 2 * 1000, from);
    t.diagnostic(`victim unhealthy ${Math.round(lost.receivedAt - resumed)} ms after resume`);
    assert.equal(lost.reasons[0]!.code, "connection_lost");
    const stall = await manager.waitFor((l) => l.msg === "manager was paused; counting worker silence from now", 2000, "stall noticed", from);
    assert.ok((stall.stalledMs as number) >= 59_000, `stall of ${stall.stalledMs} ms`);

    await sleep(3000); // well past the unhealthy bound, had the silence been counted against the workers
    for (const id of live) {
      const path = manager.transitions(id).map((x) => `${x.to}${x.reasons.length ? ` (${x.reasons.map((r) => r.message).join("; ")})` : ""}`);
      assert.deepEqual(manager.transitions(id).map((x) => x.to), ["healthy"], `${id} never left healthy: ${path.join(" → ")}`);
      assert.ok(workers.get(id)!.running);
      assert.ok(!workers.get(id)!.lines.some((l) => /lost the manager|stopped answering/.test(String(l.msg))), `${id} kept its session`);
    }
  });
});
