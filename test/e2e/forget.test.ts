import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { CLI } from "../helpers/processes.js";

type Event = { seq: number; worker: string; from: string | null; to: string; reasons: Array<{ code: string; message: string }> };

const ids = async (m: McpManager) => (await m.ok<{ workers: Array<{ id: string }> }>("list_workers")).workers.map((w) => w.id).sort();
const text = (r: { content: unknown }) => (r.content as Array<{ text: string }>)[0]!.text;

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("retired workers leave the registry", () => {
  const fx = useCerts("forget", ["keep", "retired"], { before, after });
  const managers: McpManager[] = [];
  after(() => managers.forEach((m) => m.kill()));

  it("forget_worker refuses a connected worker, forgets a stopped one, and that holds across a restart", async () => {
    const first = await McpManager.start(fx.certs);
    managers.push(first);
    const { tools } = await first.client.listTools();
    const tool = tools.find((t) => t.name === "forget_worker")!;
    assert.equal(tool.title, "Forget a worker");
    assert.deepEqual(tool.annotations, {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    });
    const keep = startWorker(fx.certs, "keep", first.url);
    const retired = startWorker(fx.certs, "retired", first.url);
    for (const id of ["keep", "retired"]) await first.waitForWorker(id, (w) => w.state === "healthy", 10_000);

    const refused = await first.call("forget_worker", { worker_id: "retired" });
    assert.equal(refused.isError, true);
    assert.match(text(refused), /^E_CONNECTED: worker retired is connected; stop its agent or revoke its certificate first/);
    assert.deepEqual(await ids(first), ["keep", "retired"], "refusing changed nothing");

    retired.kill("SIGTERM");
    await first.waitForWorker("retired", (w) => w.state === "offline", 5000);
    const done = await first.ok<{ forgotten: string; lastState: string; seq: number }>("forget_worker", { worker_id: "retired" });
    assert.deepEqual([done.forgotten, done.lastState], ["retired", "offline"]);
    assert.deepEqual(await ids(first), ["keep"]);
    const { events } = await first.ok<{ events: Event[] }>("get_worker_events");
    const removal = events.find((e) => e.seq === done.seq)!;
    assert.deepEqual([removal.worker, removal.to, removal.reasons[0]!.code], ["retired", "offline", "forgotten"]);
    const again = await first.call("forget_worker", { worker_id: "retired" });
    assert.equal(again.isError, true);
    assert.match(text(again), /^E_UNKNOWN_WORKER: no worker retired is known/);
    assert.ok(
      first.logging.some((l) => /^worker retired was forgotten/.test(String((l.data as { message?: string }).message))),
      "the client was told",
    );
    await first.close();
    assert.equal((await first.exited).code, 0);

    // Restarted on the same state file and port: "keep" is back, and said to be back, not "recovered".
    const second = await McpManager.start(fx.certs, ["--port", String(first.port)]);
    managers.push(second);
    assert.deepEqual(await ids(second), ["keep"], "forgotten across the restart");
    await waitFor("keep's return announced", 15_000, async () =>
      second.logging.find((l) => (l.data as { worker?: string }).worker === "keep"),
    );
    const told = second.logging.filter((l) => (l.data as { worker?: string }).worker === "keep").map((l) => (l.data as { message: string }).message);
    assert.equal(told[0], "worker keep is back after the manager restart (healthy)");
    assert.ok(!told.some((m) => /recovered/.test(m)), told.join(" | "));
    const kept = await second.ok<{ events: Event[] }>("get_worker_events", { worker_id: "keep" });
    assert.deepEqual(kept.events.at(-1)!.reasons.map((r) => r.code), ["returned_after_restart"]);

    keep.kill("SIGTERM");
    await second.waitForWorker("keep", (w) => w.state === "offline", 5000);
    await second.close();
    assert.equal((await second.exited).code, 0);

    // Offline since its goodbye for longer than --forget-offline-after: forgotten by itself.
    const third = await McpManager.start(fx.certs, ["--port", String(first.port), "--forget-offline-after", "1s"]);
    managers.push(third);
    const expired = await waitFor("keep forgotten", 60_000, async () => {
      const { events: all } = await third.ok<{ events: Event[] }>("get_worker_events");
      return all.find((e) => e.worker === "keep" && e.reasons[0]?.code === "expired_offline");
    });
    assert.match(expired.reasons[0]!.message, /^forgotten: offline for [\d.]+m?s, more than 1s$/);
    assert.deepEqual(await ids(third), []);
    await third.close();
    assert.equal((await third.exited).code, 0);
  });

  it("--forget-offline-after is read like every duration, from MCP_FLEET_FORGET_OFFLINE_AFTER too", async () => {
    const child = spawn(process.execPath, [CLI, "manager", "--ca", fx.certs.ca, "--no-mdns", "--metrics-listen", "off"], {
      env: { ...process.env, MCP_FLEET_FORGET_OFFLINE_AFTER: "7" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    assert.notEqual(code, 0);
    assert.match(stderr, /--forget-offline-after \(MCP_FLEET_FORGET_OFFLINE_AFTER\): "7" is not a duration like 500ms, 2s, 1m \(add a unit, e\.g\. 7s\)/);
  });
});
