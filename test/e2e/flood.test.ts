import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

const RECONNECTS = 700;
const PARALLEL = 4;

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

  /** One session: hello at once; closed by us as soon as the manager answers, or by the manager. */
  function once(): Promise<number | null> {
    const { ws, done } = rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("looper") }, (s) => s.send(JSON.stringify(helloFor("looper"))));
    ws.on("message", () => ws.close(1000));
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
});
