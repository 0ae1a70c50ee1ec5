import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { sleep } from "../helpers/processes.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

const RECONNECTS = 700;
const PARALLEL = 1;

/**
 * One identity reconnecting in a loop, with a real worker certificate, beside two honest real workers: the flood
 * is refused by the per-identity session rate (4006, logged), and the honest workers stay healthy with their own
 * history intact.
 */
describe("one identity reconnecting in a loop", () => {
  const honest = ["h1", "h2"];
  const fx = useCerts("flood", [...honest, "looper"], { before, after });
  let manager: McpManager;

  before(async () => {
    manager = await McpManager.start(fx.certs);
    for (const id of honest) startWorker(fx.certs, id, manager.url);
    for (const id of honest) await manager.waitForWorker(id, (w) => w.state === "healthy", 10_000);
  });
  after(() => manager?.kill());

  /**
   * One session: hello at once; once welcomed, a goodbye and a close, so every admitted session is two events (offline,
   * then back). Closed by the manager if it refuses.
   */
  function once(): Promise<number | null> {
    const { ws, done } = rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("looper") }, (s) => s.send(JSON.stringify(helloFor("looper"))));
    ws.on("message", () => {
      ws.send(JSON.stringify({ type: "goodbye", reason: "shutdown" }));
      ws.close(1000);
    });
    return done.then((o) => o.closeCode);
  }

  it(`${RECONNECTS} reconnects are rate-limited; every honest worker stays healthy and keeps its join event`, async (t) => {
    const started = performance.now();
    const codes = new Map<number | null, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < RECONNECTS) {
          next++;
          const code = await once();
          codes.set(code, (codes.get(code) ?? 0) + 1);
          assert.ok(performance.now() - started < 120_000, "the flood stays within its time bound");
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(`${RECONNECTS} sessions in ${seconds.toFixed(1)} s; close codes ${JSON.stringify([...codes])}`);
    const limited = codes.get(4006) ?? 0;
    assert.ok(limited >= RECONNECTS - 60, `most sessions refused with 4006 (${limited} of ${RECONNECTS})`);
    const line = manager.lines.find((l) => l.msg === "refused: this worker opens sessions too often");
    assert.equal(line?.worker, "looper", "the refusals are logged, naming the identity");

    for (const id of honest) {
      await manager.waitForWorker(id, (w) => w.state === "healthy" && w.connected, 5000);
      const { events } = await manager.ok<{ events: Array<{ worker: string; from: string | null; to: string }> }>("get_worker_events", { worker_id: id });
      assert.ok(events.some((e) => e.worker === id && e.from === null && e.to === "healthy"), `${id}'s join event is still in its history: ${JSON.stringify(events)}`);
      const transitions = manager.lines.filter((l) => l.event === "transition" && l.worker === id).map((l) => l.to);
      assert.deepEqual(transitions, ["healthy"], `${id} never left healthy`);
    }
  });

  it("a refused session that sends an oversized frame before our close lands harms nobody", async () => {
    // The looper is over its rate: each of these is refused at once, and answers with a frame over 64 KiB.
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("looper") }, (ws) => ws.send("x".repeat(70 * 1024))).done),
    );
    assert.ok(outcomes.every((o) => o.closeCode === 4006 || o.closeCode === 1009 || o.closeCode === 1006), JSON.stringify(outcomes.map((o) => o.closeCode)));
    const { workers } = await manager.ok<{ workers: Array<{ id: string; state: string }> }>("list_workers");
    for (const id of honest) assert.equal(workers.find((w) => w.id === id)?.state, "healthy", `${id} healthy, and the manager still answers`);
    assert.ok(!manager.lines.some((l) => /Unhandled 'error' event/.test(String(l.raw))), "nothing escaped");
  });
});

describe("a real worker refused for its session rate", () => {
  const fx = useCerts("backoff", ["twin"], { before, after });
  let manager: Manager;
  const lines: Array<Record<string, unknown>> = [];
  after(() => manager?.close());

  it("backs off (its next delay's ceiling doubles with each 4006) instead of hammering", async (t) => {
    const sink = { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) };
    manager = await startManager({
      tls: { ca: fx.certs.ca, cert: fx.certs.managerCert, key: fx.certs.managerKey },
      host: "127.0.0.1",
      port: 0,
      heartbeatIntervalMs: 1000,
      missedHeartbeats: 3,
      limits: { sessionBurst: 3, sessionsPerMinute: 1 },
      log: createLogger({ name: "manager", level: "info", destination: sink }),
    });
    // Two agents with one certificate replace each other (4005) and reconnect, until the rate refuses them.
    const url = `wss://127.0.0.1:${manager.port}`;
    const twins = [startWorker(fx.certs, "twin", url, ["--log-level", "debug"]), startWorker(fx.certs, "twin", url, ["--log-level", "debug"])];
    const refusedBy = (w: (typeof twins)[number]) => w.lines.filter((l) => l.code === 4006);
    const deadline = performance.now() + 60_000;
    while (!twins.some((w) => refusedBy(w).length >= 4)) {
      assert.ok(performance.now() < deadline, `refusals seen by the workers: ${twins.map((w) => refusedBy(w).length).join(", ")}`);
      await sleep(100);
    }
    const refused = twins.map(refusedBy).find((r) => r.length >= 4)!;
    const ceilings = refused.map((l) => Number(l.backoffCeilingMs));
    t.diagnostic(`backoff ceilings after each 4006: ${ceilings.join(", ")} ms`);
    for (let i = 1; i < ceilings.length; i++) assert.ok(ceilings[i]! >= Math.min(30_000, 2 * ceilings[i - 1]!), `ceilings double: ${ceilings.join(", ")}`);
    const managerRefusals = lines.filter((l) => l.msg === "refused: this worker opens sessions too often").length;
    assert.ok(managerRefusals < 40, `the manager refused ${managerRefusals} sessions in all: the agents are not hammering`);
    for (const w of twins) w.kill("SIGKILL");
  });
});
