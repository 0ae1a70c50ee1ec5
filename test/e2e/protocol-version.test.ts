import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { WebSocketServer } from "ws";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

// An agent of the release before (a version the manager no longer speaks), and a manager of a later one.
const OLD = PROTOCOL_VERSION - 1;
const NEXT = PROTOCOL_VERSION + 1;

describe("protocol version mismatch, reported on both sides with both versions named", () => {
  const fx = useCerts("proto", ["newer", "older"], { before, after });

  it("a worker speaking a version the manager does not: closed with 4001; the worker logs it and backs off", async () => {
    const manager = await ManagerProc.start(fx.certs);
    const w = startWorker(fx.certs, "newer", manager.url, [], { MCP_FLEET_FAULT_PROTOCOL: String(OLD) });
    const closing = await manager.waitFor((l) => l.cause === "UNSUPPORTED_PROTOCOL", 5000, "manager closes 4001");
    assert.equal(closing.detail, `worker speaks ${OLD}, manager speaks ${PROTOCOL_VERSION}`);
    const seen = await w.waitFor((l) => l.code === 4001, 5000, "worker told");
    assert.ok(String(seen.msg).includes(`unsupported protocol version: worker speaks ${OLD}, manager speaks ${PROTOCOL_VERSION}`), String(seen.msg));
    assert.equal(seen.backoffCeilingMs, 30_000, "waits as long as it may: the same build would be refused again");
    assert.equal(manager.transitions("newer").length, 0, "never in the registry");
    w.kill("SIGKILL");
    await manager.stop();
  });

  it("an agent of the previous release, whose hello breaks this version's field rules, still gets 4001, not 4000", async () => {
    const manager = await ManagerProc.start(fx.certs);
    const previous = { ...helloFor("older"), protocol: OLD, hostname: "my_host", labels: { note: "free text" } };
    const outcome = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("older") }, (ws) => ws.send(JSON.stringify(previous))).done;
    assert.equal(outcome.closeCode, 4001, JSON.stringify(outcome));
    assert.equal(outcome.closeReason, `unsupported protocol version: worker speaks ${OLD}, manager speaks ${PROTOCOL_VERSION}`);
    await manager.stop();
  });

  it("a manager speaking a version the worker does not: the worker closes with 4001, logs it and backs off", async () => {
    const received: Array<{ code: number; reason: string }> = [];
    const server = createServer({
      ca: readFileSync(fx.certs.ca),
      cert: readFileSync(fx.certs.managerCert),
      key: readFileSync(fx.certs.managerKey),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const wss = new WebSocketServer({ server, perMessageDeflate: false });
    wss.on("connection", (ws) => {
      ws.on("message", () =>
        ws.send(JSON.stringify({ type: "welcome", protocol: NEXT, sessionId: "s", heartbeatIntervalMs: 1000, managerVersion: "9.0.0" })),
      );
      ws.on("close", (code, reason) => received.push({ code, reason: reason.toString() }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const w = startWorker(fx.certs, "older", `wss://127.0.0.1:${port}`);
      const seen = await w.waitFor((l) => l.kind === "protocol", 5000, "worker refuses the manager's version");
      assert.ok(String(seen.msg).includes(`unsupported protocol version: manager speaks ${NEXT}, worker speaks ${PROTOCOL_VERSION}`), String(seen.msg));
      assert.equal(seen.backoffCeilingMs, 30_000);
      const deadline = performance.now() + 2000;
      while (received.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(received[0], { code: 4001, reason: `unsupported protocol version: manager speaks ${NEXT}, worker speaks ${PROTOCOL_VERSION}` });
      w.kill("SIGKILL");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
