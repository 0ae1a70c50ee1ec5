import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";

describe("two hosts with the same certificate", () => {
  const fx = useCerts("dup", ["twin", "bystander"], { before, after });

  it("the newest session wins, the old one is closed with the replaced code, and the pair is reported as degraded", async () => {
    const manager = await ManagerProc.start(fx.certs);
    startWorker(fx.certs, "bystander", manager.url);
    const first = startWorker(fx.certs, "twin", manager.url);
    await manager.waitForState("twin", "healthy", 5000);
    const second = startWorker(fx.certs, "twin", manager.url);
    const replaced = await manager.waitFor((l) => l.worker === "twin" && l.cause === "REPLACED", 5000, "old session replaced");
    assert.match(String(replaced.detail), /new session from 127\.0\.0\.1/);
    const told = await first.waitFor((l) => l.code === 4005, 5000, "first twin told");
    assert.match(String(told.msg), /replaced by a newer session/);
    const degraded = await manager.waitFor(
      (l) => l.event === "transition" && l.worker === "twin" && (l.reasons as Array<{ code: string }>).some((r) => r.code === "identity_conflict"),
      20_000,
      "identity conflict reported",
    );
    assert.equal(degraded.to, "degraded");
    assert.ok(first.running && second.running);
    assert.deepEqual(manager.transitions("bystander").map((t) => t.to), ["healthy"]);
    await manager.stop();
  });
});
