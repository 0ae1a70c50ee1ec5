import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import { describe, it } from "node:test";
import type { LogThrottle } from "../../src/log-throttle.js";
import { FrontDoor } from "../../src/manager/front-door.js";
import { DEFAULT_LIMITS } from "../../src/manager/limits.js";

/** A front door on loopback in front of a stand-in TLS server that records what it is handed. */
async function setup() {
  const tls = new EventEmitter();
  const handed: Socket[] = [];
  tls.on("connection", (s: Socket) => handed.push(s));
  const warned: string[] = [];
  const throttle = { warn: (_kind: string, _fields: unknown, msg: string) => void warned.push(msg) } as unknown as LogThrottle;
  const door = new FrontDoor(tls as unknown as TlsServer, { ...DEFAULT_LIMITS, helloTimeoutMs: 1000 }, throttle);
  const port = await door.listen(0, "127.0.0.1");
  return { tls, handed, warned, door, port };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!pred()) {
    assert.ok(performance.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("FrontDoor", () => {
  it("hands each accepted connection, paused and unread, to the TLS server through the gate", async () => {
    const { handed, door, port } = await setup();
    const client = connect(port, "127.0.0.1");
    client.on("error", () => {});
    await until(() => handed.length === 1, "connection handed to the TLS server");
    assert.equal(handed[0]!.isPaused(), true, "nothing is read before the TLS server takes it");
    assert.equal(door.gate.active, 1, "its handshake holds a gate slot");
    const stopped = door.stopAccepting();
    door.destroyAll();
    await stopped;
    client.destroy();
  });

  it("drops a connection past TLS that sends no upgrade request before the hello timeout; an upgraded one is left alone", async () => {
    const { tls, warned, door } = await setup();
    const fakeSecure = (p: number) => {
      const s = { remoteAddress: "127.0.0.1", remotePort: p, destroyed: false, destroy: () => void (s.destroyed = true) };
      return s;
    };
    const silent = fakeSecure(1);
    const upgraded = fakeSecure(2);
    const t0 = performance.now();
    tls.emit("secureConnection", silent as unknown as TLSSocket);
    tls.emit("secureConnection", upgraded as unknown as TLSSocket);
    door.upgraded(upgraded as unknown as TLSSocket);
    door.pump(t0 + 900);
    assert.equal(silent.destroyed, false, "not before its deadline");
    door.pump(t0 + 1001);
    assert.equal(silent.destroyed, true);
    assert.equal(upgraded.destroyed, false);
    assert.deepEqual(warned, ["dropped: no upgrade request in time"]);
    const stopped = door.stopAccepting();
    door.destroyAll();
    await stopped;
  });
});
