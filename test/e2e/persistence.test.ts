import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";

type Worker = { id: string; state: string; connected: boolean; reasons: string[] };
type Detail = { worker: { firstSeen: string; reasons: Array<{ code: string; message: string }> } };

describe("nothing learned is lost on a manager restart", () => {
  const fx = useCerts("persist", ["stays", "dies", "leaves"], { before, after });
  const managers: McpManager[] = [];
  after(() => managers.forEach((m) => m.kill()));

  it("known workers and their history survive; those that do not return are judged after the grace period", async () => {
    const first = await McpManager.start(fx.certs);
    managers.push(first);
    const stays = startWorker(fx.certs, "stays", first.url);
    const dies = startWorker(fx.certs, "dies", first.url);
    const leaves = startWorker(fx.certs, "leaves", first.url);
    for (const id of ["stays", "dies", "leaves"]) await first.waitForWorker(id, (w) => w.state === "healthy", 10_000);
    leaves.kill("SIGTERM");
    await first.waitForWorker("leaves", (w) => w.state === "offline", 2000);
    const before = await first.ok<{ workers: Worker[] }>("list_workers");
    const firstSeen = async (m: McpManager, id: string) => (await m.ok<Detail>("get_worker_status", { worker_id: id, fresh: false })).worker.firstSeen;
    const firstSeenBefore = new Map<string, string>();
    for (const w of before.workers) firstSeenBefore.set(w.id, await firstSeen(first, w.id));
    const eventsBefore = await first.ok<{ events: Array<{ seq: number }> }>("get_worker_events");
    await first.close();
    assert.equal((await first.exited).code, 0);
    dies.kill("SIGKILL"); // dies while the manager is away

    // The grace must outlast the worker's reconnect backoff: its ceiling doubles through the downtime (0.5, 1, 2,
    // 4, 8 s), and a loaded CI machine has taken seconds to start the second manager, so 3 s was sometimes missed.
    const graceMs = 12_000;
    const secondStart = performance.now();
    const second = await McpManager.start(fx.certs, ["--port", String(first.port), "--restart-grace", `${graceMs / 1000}s`]);
    managers.push(second);
    const restored = await second.ok<{ workers: Worker[] }>("list_workers");
    assert.deepEqual(restored.workers.map((w) => w.id).sort(), ["dies", "leaves", "stays"]);
    for (const w of before.workers) {
      assert.equal(await firstSeen(second, w.id), firstSeenBefore.get(w.id), `${w.id} first seen kept`);
    }
    const history = await second.ok<{ events: Array<{ seq: number }> }>("get_worker_events");
    assert.deepEqual(
      history.events.slice(0, eventsBefore.events.length).map((e) => e.seq),
      eventsBefore.events.map((e) => e.seq),
      "event history kept",
    );

    await second.waitForWorker("stays", (w) => w.connected && w.state === "healthy", graceMs);
    await second.waitForWorker("dies", (w) => w.state === "unhealthy", graceMs + 10_000);
    assert.ok(performance.now() - secondStart >= graceMs - 100, "judged only once the grace period was over");
    const judged = await second.ok<{ workers: Worker[] }>("list_workers");
    const byId = new Map(judged.workers.map((w) => [w.id, w]));
    assert.equal(byId.get("dies")!.state, "unhealthy");
    assert.deepEqual(byId.get("dies")!.reasons, ["not_seen_since_start"]);
    const diesDetail = await second.ok<Detail>("get_worker_status", { worker_id: "dies", fresh: false });
    assert.equal(diesDetail.worker.reasons[0]!.message, "not seen since manager start");
    assert.equal(byId.get("leaves")!.state, "offline", "its last word was goodbye");
    assert.equal(byId.get("stays")!.state, "healthy");
    const staysEvents = await second.ok<{ events: Array<{ to: string }> }>("get_worker_events", { worker_id: "stays" });
    assert.ok(!staysEvents.events.some((e) => e.to === "unhealthy"), "a worker that came back was never marked unhealthy");
    stays.kill("SIGKILL");
    await second.close();
  });

  for (const [what, damage] of [
    ["corrupt", () => "{ this is not json"],
    ["truncated", (valid: string) => valid.slice(0, Math.floor(valid.length / 2))],
    ["from another schema", () => JSON.stringify({ version: 99, workers: "many" })],
  ] as const) {
    it(`a ${what} state file is set aside with a clear error, and the manager starts`, async () => {
      const path = join(fx.dir, "state.json");
      writeFileSync(path, damage(existsSync(path) ? readFileSync(path, "utf8") : "{}"));
      const m = await McpManager.start(fx.certs);
      managers.push(m);
      const err = m.lines.find((l) => l.level === "error" && /state file unreadable/.test(String(l.msg)));
      assert.ok(err, JSON.stringify(m.lines.slice(0, 5)));
      assert.ok(existsSync(String(err!.movedTo)), "the damaged file is kept aside");
      assert.ok(readdirSync(fx.dir).some((f) => f.startsWith("state.json.corrupt-")));
      const list = await m.ok<{ total: number }>("list_workers");
      assert.equal(list.total, 0);
      await m.close();
      assert.equal((await m.exited).code, 0);
      assert.ok(existsSync(path), "a fresh state file is written on the way out");
    });
  }
});
