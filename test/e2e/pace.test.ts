import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { sleep, type LogLine, type Proc } from "../helpers/processes.js";

describe("the manager keeps the fleet's heartbeat rate within its budget", () => {
  const ids = ["p1", "p2", "p3"];
  const fx = useCerts("pace", ids, { before, after });

  it("lengthens the interval as the fleet grows, tells connected workers, and shortens it when the fleet shrinks", async () => {
    // 2 heartbeats a second for the whole fleet, from a 500 ms base: 1 worker → 500 ms, 3 workers → 1500 ms.
    const manager = await ManagerProc.start(fx.certs, ["--heartbeat-interval", "500ms", "--heartbeat-budget", "2", "--log-level", "trace"]);
    const workers = new Map<string, Proc>();
    workers.set("p1", startWorker(fx.certs, "p1", manager.url));
    await manager.waitForState("p1", "healthy", 5000);
    assert.equal((await workers.get("p1")!.waitFor((l) => l.msg === "connected to manager", 2000, "welcome")).heartbeatIntervalMs, 500);

    const p1 = workers.get("p1")!;
    const toldFirst = p1.lines.length;
    for (const id of ["p2", "p3"]) workers.set(id, startWorker(fx.certs, id, manager.url));
    const longer = await manager.waitFor((l) => l.msg === "heartbeat interval changed" && l.to === 1500, 5000, "lengthened");
    assert.equal(longer.connected, 3);
    await p1.waitFor((l) => l.msg === "heartbeat interval changed by the manager" && l.to === 1500, 3000, "p1 told", toldFirst);
    // The two arrivals may be seen in one pace check or in two (500 → 1000 → 1500).
    assertChain(p1.lines.slice(toldFirst), 500, 1500);

    // The workers keep the new pace: about 2 heartbeats a second for the three of them, not 6.
    const from = manager.lines.length;
    await sleep(6000);
    const beats = manager.lines.slice(from).filter((l) => l.msg === "heartbeat").length;
    assert.ok(beats >= 9 && beats <= 15, `${beats} heartbeats in 6 s from 3 workers at 1.5 s`);
    for (const id of ids) assert.ok(!manager.transitions(id).some((t) => t.to !== "healthy"), `${id} stayed healthy through the change`);

    const toldBefore = p1.lines.length;
    for (const id of ["p2", "p3"]) workers.get(id)!.kill("SIGTERM");
    await manager.waitFor((l) => l.msg === "heartbeat interval changed" && l.to === 500, 5000, "shortened");
    await p1.waitFor((l) => l.msg === "heartbeat interval changed by the manager" && l.to === 500, 3000, "p1 told again", toldBefore);
    // Likewise the two departures: 1500 → 500, or 1500 → 1000 → 500.
    assertChain(p1.lines.slice(toldBefore), 1500, 500);
    await sleep(2000);
    assert.deepEqual(manager.transitions("p1").map((t) => t.to), ["healthy"], "p1 was never judged by a pace it had not heard of");
    await manager.stop();
  });
});

/** The worker's interval changes form one unbroken chain of steps from `from` to `to`. */
function assertChain(lines: readonly LogLine[], from: number, to: number): void {
  const steps = lines.filter((l) => l.msg === "heartbeat interval changed by the manager");
  assert.ok(steps.length >= 1, "the worker was told of a change");
  assert.equal(steps[0]!.from, from);
  for (let i = 1; i < steps.length; i++) assert.equal(steps[i]!.from, steps[i - 1]!.to);
  assert.equal(steps.at(-1)!.to, to);
}
