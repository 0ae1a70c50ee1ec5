import assert from "node:assert/strict";
import { connect as netConnect } from "node:net";
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import { createLogger, type Logger } from "../../src/log.js";
import type { SessionLimits } from "../../src/manager/limits.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { ManagerProc, startWorker, useCerts, type CertSet } from "../helpers/fleet.js";
import { sleep } from "../helpers/processes.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

/** A manager in this test's process, for limits the CLI does not expose and to read its state directly. */
function localManager(certs: CertSet, limits: Partial<SessionLimits>, log: Logger): Promise<Manager> {
  return startManager({
    tls: { ca: certs.ca, cert: certs.managerCert, key: certs.managerKey },
    host: "127.0.0.1",
    port: 0,
    heartbeatIntervalMs: 1000,
    missedHeartbeats: 3,
    limits,
    log,
  });
}

/** Every limit cuts off the one peer that hit it, within its bound, with its own code or log line. */
describe("limits", () => {
  const honest = ["h1", "h2", "h3"];
  const fx = useCerts("limits", [...honest, "big", "flood", "mute", "extra1", "extra2", "extra3", "slow", "bye"], { before, after });
  let manager: ManagerProc;

  before(async () => {
    manager = await ManagerProc.start(fx.certs, [
      "--handshake-timeout", "1s",
      "--hello-timeout", "1s",
      "--max-message-rate", "20",
      "--max-sessions", "5",
    ]);
    for (const id of honest) startWorker(fx.certs, id, manager.url);
    for (const id of honest) await manager.waitForState(id, "healthy", 5000);
  });

  const withHello = (id: string, then: (send: (data: string | Buffer) => void) => void) =>
    rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker(id) }, (ws) => {
      ws.send(JSON.stringify(helloFor(id)));
      setTimeout(() => then((d) => ws.send(d)), 200);
    });

  it("an oversized frame (over 64 KiB) closes that session with 1009 and a log line", async () => {
    const from = manager.lines.length;
    const t = performance.now();
    const outcome = await withHello("big", (send) => send(JSON.stringify({ type: "heartbeat", pad: "x".repeat(70 * 1024) }))).done;
    assert.equal(outcome.closeCode, 1009);
    assert.ok(performance.now() - t < 2000);
    await manager.waitFor((l) => l.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH", 1000, "frame size logged", from);
  });

  it("a message flood closes that session with the rate-limit code", async () => {
    const from = manager.lines.length;
    const hb = JSON.stringify({ type: "heartbeat", seq: 0, metrics: { cpu: null, load1: null, cores: null, mem: null, memTotal: null, swap: null, disk: null, battery: null, net: null, temp: null, uptime: null, errors: [] } });
    const outcome = await withHello("flood", (send) => {
      for (let i = 0; i < 2000; i++) send(hb);
    }).done;
    assert.equal(outcome.closeCode, 4006);
    assert.match(outcome.closeReason, /rate limited: over 20 messages\/s/);
    await manager.waitFor((l) => l.cause === "RATE_LIMITED", 1000, "rate limit logged", from);
  });

  it("a TCP client that never completes the TLS handshake is dropped within the handshake timeout", async (t) => {
    const from = manager.lines.length;
    const started = performance.now();
    const socket = netConnect(manager.port, "127.0.0.1");
    const closedAfter = await new Promise<number>((resolve) => socket.on("close", () => resolve(performance.now() - started)));
    t.diagnostic(`dropped after ${Math.round(closedAfter)} ms (limit 1 s)`);
    assert.ok(closedAfter >= 900 && closedAfter < 3000);
    const line = await manager.waitFor((l) => l.msg === "TLS handshake failed", 1000, "logged", from);
    assert.equal(line.code, "ERR_TLS_HANDSHAKE_TIMEOUT");
  });

  it("a client past TLS that never sends its upgrade request is dropped within the hello timeout", async () => {
    const from = manager.lines.length;
    const started = performance.now();
    const socket = tlsConnect({
      host: "127.0.0.1",
      port: manager.port,
      ca: readFileSync(fx.certs.ca),
      ...Object.fromEntries(Object.entries(fx.certs.worker("mute")).map(([k, v]) => [k, readFileSync(v)])),
      checkServerIdentity: () => undefined,
    });
    socket.on("error", () => {});
    const closedAfter = await new Promise<number>((resolve) => socket.on("close", () => resolve(performance.now() - started)));
    assert.ok(closedAfter < 4000, `dropped after ${Math.round(closedAfter)} ms`);
    await manager.waitFor((l) => l.msg === "dropped: no upgrade request in time", 1000, "logged", from);
  });

  it("an authenticated client that never sends hello is closed with the hello-timeout code", async () => {
    const t = performance.now();
    const outcome = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("mute") }).done;
    assert.equal(outcome.closeCode, 4007);
    assert.ok(performance.now() - t < 3000);
  });

  it("a session that said goodbye and stays open is closed after a short grace", async () => {
    const from = manager.lines.length;
    let saidAt = 0;
    const client = withHello("bye", (send) => {
      send(JSON.stringify({ type: "goodbye", reason: "shutdown" }));
      saidAt = performance.now();
    });
    const outcome = await Promise.race([client.done, sleep(6000).then(() => null)]);
    const after = performance.now() - saidAt;
    client.ws.terminate();
    assert.ok(saidAt > 0, "the goodbye was sent");
    assert.ok(outcome, "the manager closed the session");
    assert.equal(outcome.closeCode, 1000);
    assert.ok(after < 3000, `closed ${Math.round(after)} ms after the goodbye`);
    await manager.waitFor((l) => l.msg === "closing worker session" && l.worker === "bye" && l.code === 1000, 1000, "the close is logged", from);
  });

  it("sessions beyond the maximum are refused with their own code", async () => {
    const open = [];
    for (const id of ["extra1", "extra2"]) {
      const c = withHello(id, () => {});
      open.push(c);
      await manager.waitForState(id, "healthy", 3000);
    }
    const outcome = await withHello("extra3", () => {}).done;
    assert.equal(outcome.closeCode, 4009);
    assert.match(outcome.closeReason, /too many sessions: limit 5/);
    for (const c of open) c.ws.close();
  });

  it("the three honest workers stayed healthy throughout", async () => {
    await sleep(500);
    for (const id of honest) assert.deepEqual(manager.transitions(id).map((x) => x.to), ["healthy"], id);
  });
});

describe("sessions waiting for hello, per address", () => {
  const ids = ["p1", "p2", "p3"];
  const fx = useCerts("pending", ids, { before, after });
  let manager: Manager;
  const lines: Array<Record<string, unknown>> = [];
  after(() => manager?.close());

  it("beyond the cap, a new session from the same address is refused with its own code and a log line", async () => {
    const sink = { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
    manager = await localManager(fx.certs, { maxPendingPerAddress: 2, helloTimeoutMs: 10_000 }, createLogger({ name: "manager", level: "warn", destination: sink }));
    const url = `wss://127.0.0.1:${manager.port}`;
    const silent = ids.slice(0, 2).map((id) => rawClient(url, { ca: fx.certs.ca, ...fx.certs.worker(id) }));
    await Promise.all(silent.map((c) => new Promise((resolve) => c.ws.once("open", resolve))));
    const third = await rawClient(url, { ca: fx.certs.ca, ...fx.certs.worker("p3") }).done;
    assert.equal(third.closeCode, 4012);
    assert.match(third.closeReason, /too many sessions waiting for hello from this address: limit 2/);
    assert.ok(lines.some((l) => l.msg === "refused: too many sessions from this address are waiting for hello" && l.pending === 2), "logged");
    // Once one of them says hello, there is room again.
    const connected = async (id: string) => {
      const deadline = performance.now() + 5000;
      while (!manager.registry.get(id)?.connected) {
        assert.ok(performance.now() < deadline, `${id} did not get in`);
        await sleep(20);
      }
    };
    silent[0]!.ws.send(JSON.stringify(helloFor("p1")));
    await connected("p1");
    const again = rawClient(url, { ca: fx.certs.ca, ...fx.certs.worker("p3") }, (ws) => ws.send(JSON.stringify(helloFor("p3"))));
    await connected("p3");
    for (const c of [...silent, again]) c.ws.terminate();
  });
});

describe("a peer that stops reading", () => {
  const fx = useCerts("slow", ["slow"], { before, after });
  let manager: Manager;
  after(() => manager?.close());

  it("is cut off with the slow-consumer code once its unread data passes the cap", async () => {
    manager = await localManager(fx.certs, { sendBufferBytes: 256 * 1024 }, createLogger({ name: "manager", level: "silent" }));
    const client = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker("slow") }, (ws) => {
      ws.send(JSON.stringify(helloFor("slow")));
    });
    while (!manager.registry.get("slow")?.connected) await sleep(20);
    // Stop reading: the kernel buffers fill, then the manager's own queue grows.
    (client.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const pad = "x".repeat(60_000);
    const failures: unknown[] = [];
    for (let i = 0; i < 400 && manager.registry.get("slow")?.connected; i++) {
      manager.request("slow", "status.snapshot", { pad } as unknown as Record<string, never>, { timeoutMs: 5000 }).catch((e: unknown) => failures.push(e));
      if (i % 20 === 0) await sleep(5);
    }
    const deadline = performance.now() + 5000;
    while (manager.registry.get("slow")?.connected) {
      assert.ok(performance.now() < deadline, "slow reader still connected");
      await sleep(20);
    }
    const reason = manager.registry.get("slow")!.reasons[0]!.message;
    assert.match(reason, /slow consumer: \d+ bytes unread \(4010\)/);
    client.ws.terminate();
  });
});

describe("TLS handshakes wait their turn", () => {
  const ids = Array.from({ length: 12 }, (_, i) => `gated-${i}`);
  const fx = useCerts("gate", [...ids, "late"], { before, after });
  let manager: Manager;
  const lines: Array<Record<string, unknown>> = [];
  after(() => manager?.close());

  before(async () => {
    const sink = { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
    const log = createLogger({ name: "manager", level: "warn", destination: sink });
    manager = await localManager(fx.certs, { maxHandshakes: 1, handshakeQueueMs: 400, handshakeSlotMs: 1000 }, log);
  });

  it("a burst of workers all get in, one handshake at a time", async () => {
    const clients = ids.map((id) => rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker(id) }, (ws) => ws.send(JSON.stringify(helloFor(id)))));
    const deadline = performance.now() + 10_000;
    while (!ids.every((id) => manager.registry.get(id)?.connected)) {
      assert.ok(performance.now() < deadline, `connected: ${ids.filter((id) => manager.registry.get(id)?.connected).join(",")}`);
      await sleep(20);
    }
    for (const c of clients) c.ws.terminate();
  });

  it("a connection that waits longer than the queue allows is dropped with a log line; the gate then serves others", async () => {
    // A peer that opens TCP and never starts TLS holds the one slot (for a second: slotMs).
    const stalls = [netConnect(manager.port, "127.0.0.1")];
    await sleep(50);
    const t = performance.now();
    const waiting = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker("late") });
    const outcome = await waiting.done;
    const after = performance.now() - t;
    assert.equal(outcome.opened, false);
    assert.match(outcome.error ?? "", /ECONNRESET|socket hang up/);
    assert.ok(after >= 350 && after < 900, `dropped after ${Math.round(after)} ms (queue limit 400 ms)`);
    assert.ok(lines.some((l) => /waited too long for a TLS handshake/.test(String(l.msg)) && Number(l.shed) >= 1), "shedding is logged");
    // Once the stalled handshake stops counting, the same worker gets in.
    await sleep(1100);
    const again = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: fx.certs.ca, ...fx.certs.worker("late") }, (ws) => ws.send(JSON.stringify(helloFor("late"))));
    const deadline = performance.now() + 5000;
    while (!manager.registry.get("late")?.connected) {
      assert.ok(performance.now() < deadline, "late worker did not get in");
      await sleep(20);
    }
    again.ws.terminate();
    for (const s of stalls) s.destroy();
  });
});
