import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { sleep } from "../helpers/processes.js";

describe("manager restart", () => {
  const ids = ["r1", "r2", "r3"];
  const fx = useCerts("restart", ids, { before, after });

  for (const how of ["SIGTERM", "SIGKILL"] as const) {
    it(`after a ${how}, every worker reconnects by itself and is healthy again within 10 s`, async (ctx) => {
      const first = await ManagerProc.start(fx.certs);
      const workers = ids.map((id) => startWorker(fx.certs, id, first.url));
      for (const id of ids) await first.waitForState(id, "healthy", 5000);

      first.kill(how);
      await first.exited;
      if (how === "SIGTERM") {
        assert.ok(
          !first.transitions().some((t) => t.to === "unhealthy"),
          "a manager shutting down does not mark the workers it disconnects unhealthy",
        );
      }
      await sleep(500); // down for a moment: the workers see refused connections and back off
      const restarted = performance.now();
      const second = await ManagerProc.start(fx.certs, [], first.port);
      for (const id of ids) {
        const t = await second.waitForState(id, "healthy", 10_000);
        assert.ok(t.receivedAt - restarted < 10_000, `${id} back after ${Math.round(t.receivedAt - restarted)} ms`);
        ctx.diagnostic(`${id} healthy ${Math.round(t.receivedAt - restarted)} ms after the restarted manager started`);
      }
      for (const w of workers) assert.ok(w.running, "workers kept running: they reconnect, they do not exit");
      second.kill("SIGKILL");
      for (const w of workers) w.kill("SIGKILL");
      await second.exited;
    });
  }
});
