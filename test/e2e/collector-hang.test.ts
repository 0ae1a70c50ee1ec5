import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { sleep } from "../helpers/processes.js";

describe("a collector call that never returns", () => {
  const fx = useCerts("hang", ["stuck"], { before, after });

  it("does not delay heartbeats; the hang is reported as a warning and the other collectors recover", async () => {
    const interval = 500;
    const manager = await ManagerProc.start(fx.certs, ["--heartbeat-interval", `${interval}ms`, "--log-level", "trace"]);
    // fsSize blocks its thread for good, as `df` does on a dead NFS mount.
    const worker = startWorker(
      fx.certs,
      "stuck",
      manager.url,
      ["--collect-interval", "1s", "--collect-timeout", "1s"],
      { MCP_FLEET_FAULT_HANG_COLLECTOR: "fsSize" },
    );
    await manager.waitForState("stuck", "healthy", 5000);
    const from = manager.lines.length;
    const degraded = await manager.waitFor(
      (l) => l.event === "transition" && l.worker === "stuck" && l.to === "degraded",
      10_000,
      "degraded by the hung collector",
      from,
    );
    const reasons = degraded.reasons as Array<{ code: string; message: string }>;
    assert.equal(reasons.length, 1);
    assert.equal(reasons[0]!.code, "collector_errors");
    assert.match(reasons[0]!.message, /fsSize/);

    // Watch heartbeats for several collection cycles, through the thread being found wedged and replaced.
    await worker.waitFor((l) => l.msg === "collector thread stopped answering; replacing it", 10_000, "thread replaced");
    await sleep(4000);
    const gaps = manager.lines
      .slice(from)
      .filter((l) => l.msg === "heartbeat" && l.worker === "stuck")
      .map((l) => l.gapMs as number);
    assert.ok(gaps.length >= 8, `saw ${gaps.length} heartbeats`);
    const worst = Math.max(...gaps);
    assert.ok(worst < interval * 2, `largest heartbeat gap ${worst} ms at a ${interval} ms interval`);
    const after = manager.transitions("stuck").slice(1).map((t) => t.to);
    assert.ok(!after.includes("unhealthy"), `never unhealthy: ${after.join(" → ")}`);
    assert.ok(
      !manager.transitions("stuck").some((t) => t.reasons.some((r) => r.code === "heartbeat_late")),
      "never late",
    );

    // Only the culprit is left out: the rest of the status still arrives from the replacement thread.
    const last = manager.transitions("stuck").at(-1)!;
    assert.equal(last.to, "degraded");
    assert.match(last.reasons[0]!.message, /^collector errors: fsSize HUNG$/);
    assert.doesNotMatch(last.reasons[0]!.message, /currentLoad|mem:/);
  });
});
