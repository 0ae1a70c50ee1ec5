import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
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

  it("a restarted manager resumes its predecessor's TLS sessions with the ticket keys kept beside the state file", async () => {
    const first = await ManagerProc.start(fx.certs);
    const worker = startWorker(fx.certs, "r1", first.url);
    const hello = await first.waitFor((l) => l.msg === "worker connected" && l.worker === "r1", 5000, "r1 connected");
    assert.equal(hello.resumed, false, "the first session is a full handshake");
    const keyFile = join(fx.certs.dir, "state.json.ticket-keys");
    const st = statSync(keyFile);
    const saved = JSON.parse(readFileSync(keyFile, "utf8")) as { ca: string; keys: string };
    assert.equal(Buffer.from(saved.keys, "base64").length, 48, "one set of Node ticket keys");
    assert.match(saved.ca, /^[0-9a-f]{64}$/, "kept with the fingerprint of the CA they were made under");
    assert.equal(st.mode & 0o777, 0o600, "private to the manager's user");

    const restart = async (previous: ManagerProc) => {
      previous.kill("SIGTERM");
      await previous.exited;
      const next = await ManagerProc.start(fx.certs, [], previous.port);
      const line = await next.waitFor((l) => l.msg === "worker connected" && l.worker === "r1", 10_000, "r1 reconnected");
      return { next, line };
    };
    const kept = await restart(first);
    assert.equal(kept.line.resumed, true, "same ticket keys: the worker's session is resumed");
    const said = await worker.waitFor((l) => l.msg === "connected to manager" && l.resumed === true, 5000, "worker saw resumption");
    assert.ok(said);
    // Without the key file the new manager cannot read the worker's ticket: a full handshake, which still works.
    rmSync(keyFile);
    const lost = await restart(kept.next);
    assert.equal(lost.line.resumed, false, "new ticket keys: a full handshake");
    lost.next.kill("SIGKILL");
    worker.kill("SIGKILL");
    await lost.next.exited;
  });
});
