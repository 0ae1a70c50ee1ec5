import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FleetError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { FullStatus } from "../../src/protocol/status.js";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";
import type { Proc } from "../helpers/processes.js";

/**
 * Manager → worker requests over the worker's own socket. The manager runs in this process (the next issue's
 * MCP tools will call exactly this API); the worker is a real process.
 */
describe("requests from manager to worker", () => {
  const fx = useCerts("requests", ["q1", "liar"], { before, after });
  let manager: Manager;
  let worker: Proc;

  before(async () => {
    const certs = fx.certs;
    manager = await startManager({
      tls: { ca: certs.ca, cert: certs.managerCert, key: certs.managerKey },
      host: "127.0.0.1",
      port: 0,
      heartbeatIntervalMs: 1000,
      missedHeartbeats: 3,
      log: createLogger({ name: "manager", level: "silent" }),
    });
    worker = startWorker(certs, "q1", `wss://127.0.0.1:${manager.port}`);
    const deadline = Date.now() + 5000;
    while (manager.registry.get("q1")?.state !== "healthy") {
      assert.ok(Date.now() < deadline, "q1 connects");
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(() => manager.close());

  it("status.snapshot returns the full, fresh status: OS, CPU, load, memory, filesystems, network", async () => {
    const before = Date.now();
    const status = await manager.request("q1", "status.snapshot", {}, { timeoutMs: 10_000 });
    assert.doesNotThrow(() => FullStatus.parse(status));
    assert.ok(Date.parse(status.collectedAt) >= before - 1000, "collected now, not earlier");
    assert.ok(status.os?.kernel, "kernel");
    assert.ok(status.os?.platform, "platform");
    assert.ok((status.cpu?.cores ?? 0) > 0, "cores");
    assert.equal(status.load?.perCore.length, status.cpu?.cores, "load per core");
    assert.equal(status.load?.average.length, 3);
    assert.ok((status.memory?.total ?? 0) > 0, "memory total");
    assert.ok((status.filesystems?.length ?? 0) > 0, "filesystems");
    assert.ok(status.network?.some((n) => n.iface === "lo"), "network interfaces");
    assert.ok((status.uptimeSec ?? 0) > 0, "uptime");
    assert.deepEqual(status.errors, []);
  });

  it("concurrent requests are correlated by id", async () => {
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => manager.request("q1", "status.snapshot", {}, { timeoutMs: 10_000 })),
    );
    for (const a of answers) assert.equal(a.hostname, answers[0]!.hostname);
  });

  it("a worker that cannot answer in time gives a timeout error, and the session lives on", async () => {
    worker.kill("SIGSTOP");
    try {
      await assert.rejects(
        manager.request("q1", "status.snapshot", {}, { timeoutMs: 300 }),
        (err: unknown) => err instanceof FleetError && err.code === "E_TIMEOUT",
      );
    } finally {
      worker.kill("SIGCONT");
    }
    const status = await manager.request("q1", "status.snapshot", {}, { timeoutMs: 10_000 });
    assert.ok(status.os);
  });

  it("an answer that does not match the method's schema is refused before anyone uses it", async () => {
    const liar = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker("liar") }, (ws) => {
      ws.send(JSON.stringify(helloFor("liar")));
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data)) as { type: string; id?: number };
        if (msg.type === "request") ws.send(JSON.stringify({ type: "response", id: msg.id, result: { os: "<script>", cpu: -1 } }));
      });
    });
    while (!manager.registry.get("liar")?.connected) await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(
      manager.request("liar", "status.snapshot", {}, { timeoutMs: 2000 }),
      (err: unknown) => err instanceof FleetError && err.code === "E_BAD_RESPONSE",
    );
    liar.ws.close();
  });

  it("an unknown or disconnected worker gives a not-connected error", async () => {
    await assert.rejects(
      manager.request("nobody", "status.snapshot", {}, { timeoutMs: 1000 }),
      (err: unknown) => err instanceof FleetError && err.code === "E_NOT_CONNECTED",
    );
    worker.kill("SIGKILL");
    await worker.exited;
    await assert.rejects(
      manager.request("q1", "status.snapshot", {}, { timeoutMs: 1000 }),
      (err: unknown) => err instanceof FleetError && err.code === "E_NOT_CONNECTED",
    );
  });
});
