import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { ElicitRequest } from "@modelcontextprotocol/sdk/types.js";
import { after, before, describe, it } from "node:test";
import { BRIDGE_LOGGER } from "../../src/bridge/bridge.js";
import { startActionWorker, TOUCH_FILE, writeActionsDir } from "../helpers/actions.js";
import { BridgeClient } from "../helpers/bridge-client.js";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { HttpMcp, personCert } from "../helpers/mcp-http.js";
import { runCli, type Proc } from "../helpers/processes.js";

const IDS = ["b1", "b2", "b3"];
type Rows = { workers: Array<{ id: string; state: string }> };

async function waitForLine(b: BridgeClient, pred: (l: BridgeClient["lines"][number]) => boolean, from: number): Promise<void> {
  await b.waitFor(b.lines, (l) => b.lines.indexOf(l) >= from && pred(l), 5000, "bridge log line");
}

async function issue(dir: string, args: string[]): Promise<void> {
  const r = await runCli(["certs", "issue", ...args, "--dir", dir]);
  assert.equal(r.code, 0, r.stderr);
}

describe("mcp-fleet connect: a stdio MCP client reaches a daemon manager through the bridge", () => {
  const fx = useCerts("bridge", IDS, { before, after });
  let manager: ManagerProc;
  let bridge: BridgeClient;
  let http: HttpMcp;
  const workers = new Map<string, Proc>();
  const alice = () => personCert(fx.dir, "operator", "alice");
  const bridgeArgs = () => ["--manager", `https://127.0.0.1:${manager.port}`, "--ca", fx.certs.ca, "--cert", alice().cert, "--key", alice().key, "--reconnect-max", "1s", "--log-level", "debug"];
  const fromBridge = (level: string) => (l: BridgeClient["logging"][number]) => l.logger === BRIDGE_LOGGER && l.level === level;

  before(async () => {
    await issue(fx.dir, ["--role", "operator", "alice"]);
    manager = await ManagerProc.start(fx.certs, ["--daemon"]);
    for (const id of IDS) workers.set(id, startWorker(fx.certs, id, manager.url));
    for (const id of IDS) await manager.waitForState(id, "healthy", 10_000);
  });
  after(async () => {
    await bridge?.close().catch(() => {});
    await http?.close().catch(() => {});
  });

  it("the bridge and an HTTP client at once both list the fleet", async () => {
    bridge = await BridgeClient.start(bridgeArgs(), "claude-desktop-like");
    http = await HttpMcp.connect(manager.port, fx.certs.ca, alice(), "http-client");
    for (const c of [bridge, http]) {
      const { workers: rows } = await c.ok<Rows>("list_workers");
      assert.deepEqual(rows.map((w) => [w.id, w.state]).sort(), IDS.map((id) => [id, "healthy"]));
    }
    // The manager sees the stdio client's own name: the bridge initialized the session with the client's params.
    await manager.waitFor((l) => l.msg === "MCP session opened" && l.operator === "alice", 2000, "bridge session opened");
    assert.equal(bridge.client.getServerVersion()?.name, "mcp-fleet");
  });

  it("a worker killed with SIGKILL: both get the resource update and the log notification within 1 s", async (t) => {
    for (const c of [bridge, http]) await c.client.subscribeResource({ uri: "fleet://workers" });
    const from = manager.lines.length;
    workers.get("b3")!.kill("SIGKILL");
    const transition = await manager.waitForState("b3", "unhealthy", 5000, from);
    for (const [name, c] of [["bridge", bridge], ["http", http]] as const) {
      const update = await c.waitFor(c.updated, (u) => u.uri === "fleet://workers" && u.receivedAt >= transition.receivedAt - 50, 3000, "resource update");
      const logged = await c.waitFor(c.logging, (l) => (l.data as { worker?: string }).worker === "b3" && (l.data as { to?: string }).to === "unhealthy", 3000, "log notification");
      assert.ok(update.receivedAt - transition.receivedAt < 1000, `${name}: update after ${update.receivedAt - transition.receivedAt} ms`);
      assert.ok(logged.receivedAt - transition.receivedAt < 1000, `${name}: log after ${logged.receivedAt - transition.receivedAt} ms`);
      assert.equal(logged.level, "warning");
      t.diagnostic(`${name}, after the transition line: resource update ${Math.round(update.receivedAt - transition.receivedAt)} ms, log ${Math.round(logged.receivedAt - transition.receivedAt)} ms`);
    }
  });

  it("the daemon killed with SIGKILL and started again: a call meanwhile gets a clear error; the bridge reconnects and resubscribes", async (t) => {
    const port = manager.port;
    // A stopped worker keeps its connection but answers nothing: a fresh status call stays in flight.
    workers.get("b1")!.kill("SIGSTOP");
    const asked = bridge.lines.length;
    // Its rejection is awaited after the kill: handled from the start, so an early one is not "unhandled".
    const inFlight = assert.rejects(bridge.call("get_worker_status", { worker_id: "b1", fresh: true }), /is unreachable .*reconnecting.*the request may or may not have been carried out/);
    await waitForLine(bridge, (l) => l.msg === "request forwarded" && l.method === "tools/call", asked);
    const killedAt = performance.now();
    manager.kill("SIGKILL");
    await manager.exited;
    await inFlight;
    workers.get("b1")!.kill("SIGCONT");
    const lost = await bridge.waitFor(bridge.logging, (l) => fromBridge("warning")(l) && l.receivedAt >= killedAt, 5000, "the bridge's warning");
    assert.match(String((lost.data as { message: string }).message), /lost the connection to the manager/);
    t.diagnostic(`loss reported ${Math.round(lost.receivedAt - killedAt)} ms after the kill`);
    await assert.rejects(bridge.call("list_workers"), (err: Error) => {
      assert.match(err.message, new RegExp(`the manager at https://127\\.0\\.0\\.1:${port}/mcp is unreachable .*; reconnecting`));
      return true;
    });

    manager = await ManagerProc.start(fx.certs, ["--daemon"], port);
    const back = await bridge.waitFor(bridge.logging, (l) => fromBridge("info")(l) && l.receivedAt > lost.receivedAt, 15_000, "the bridge's reconnected notification");
    assert.match(String((back.data as { message: string }).message), /reconnected/);
    assert.deepEqual((back.data as { subscriptions: string[] }).subscriptions, ["fleet://workers"]);
    // The manager declares listChanged for both: the client is told to read the lists again.
    for (const method of ["notifications/tools/list_changed", "notifications/resources/list_changed"]) {
      await bridge.waitFor(bridge.otherNotifications, (m) => m === method, 2000, method);
    }
    const { workers: rows } = await bridge.ok<Rows>("list_workers");
    assert.ok(rows.some((w) => w.id === "b1"), JSON.stringify(rows));

    // The subscription was renewed in the new session: a worker's loss reaches the stdio client again.
    for (const id of ["b1", "b2"]) await manager.waitForState(id, "healthy", 20_000);
    const from = manager.lines.length;
    workers.get("b2")!.kill("SIGKILL");
    const transition = await manager.waitForState("b2", "unhealthy", 5000, from);
    await bridge.waitFor(bridge.updated, (u) => u.uri === "fleet://workers" && u.receivedAt >= transition.receivedAt - 50, 3000, "resource update in the new session");
    assert.deepEqual(bridge.protocolErrors, []);
  });

  it("a worker certificate, or another fleet's CA and operator: connect exits 2 saying why", async () => {
    const url = `https://127.0.0.1:${manager.port}`;
    const worker = fx.certs.worker("b1");
    const asWorker = await runCli(["connect", "--manager", url, "--ca", fx.certs.ca, "--cert", worker.cert, "--key", worker.key]);
    assert.equal(asWorker.code, 2, asWorker.stderr);
    assert.match(asWorker.stderr, /is a worker certificate; this command needs a operator or viewer certificate/);

    const foreign = join(fx.dir, "foreign");
    const init = await runCli(["certs", "init", "--dir", foreign, "--fleet", "test"]);
    assert.equal(init.code, 0, init.stderr);
    await issue(foreign, ["--role", "operator", "mallory"]);
    const m = personCert(foreign, "operator", "mallory");
    const started = performance.now();
    const wrongCa = await runCli(["connect", "--manager", url, "--ca", join(foreign, "ca.pem"), "--cert", m.cert, "--key", m.key]);
    assert.equal(wrongCa.code, 2, wrongCa.stderr);
    assert.match(wrongCa.stderr, /mcp-fleet: the manager at .* cannot be used with these certificates: TLS: .*(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED)/);
    assert.ok(performance.now() - started < 10_000, "it did not loop");
  });

  it("the client closing stdio: the bridge ends its session on the manager (DELETE)", async () => {
    const from = manager.lines.length;
    await bridge.close();
    // The HTTP client's session went with the killed manager: the one session of this manager is the bridge's.
    await manager.waitFor((l) => l.msg === "MCP session closed", 5000, "the bridge's session closed", from);
  });
});

describe("mcp-fleet connect: the manager's elicitation reaches the stdio client, and its answer goes back", () => {
  const fx = useCerts("bridge-elicit", ["e1"], { before, after });
  let manager: ManagerProc;
  let bridge: BridgeClient;
  const elicited: Array<ElicitRequest["params"]> = [];
  const file = `/tmp/mcp-fleet-bridge-${randomBytes(6).toString("hex")}`;

  before(async () => {
    await issue(fx.dir, ["--role", "operator", "alice"]);
    manager = await ManagerProc.start(fx.certs, ["--daemon"]);
    const actionsDir = writeActionsDir(join(fx.dir, "actions-e1"), [TOUCH_FILE]);
    startActionWorker(fx.certs, "e1", manager.url, { actionsDir, mcpServers: join(fx.dir, "no-such-mcp-servers.json") });
    await manager.waitForState("e1", "healthy", 10_000);
    const alice = personCert(fx.dir, "operator", "alice");
    const args = ["--manager", `https://127.0.0.1:${manager.port}`, "--ca", fx.certs.ca, "--cert", alice.cert, "--key", alice.key];
    bridge = await BridgeClient.start(args, "elicit-client", (r) => {
      elicited.push(r);
      const props = (r as { requestedSchema?: { properties?: Record<string, { type?: string; enum?: string[] }> } }).requestedSchema?.properties ?? {};
      const content = Object.fromEntries(Object.entries(props).map(([k, p]) => [k, p.type === "boolean" ? true : p.enum?.[0] ?? "yes"]));
      return { action: "accept", content };
    });
  });
  after(async () => {
    await bridge?.close().catch(() => {});
    rmSync(file, { force: true });
  });

  it("a destructive action: confirmed through elicitation over the bridge, it runs, recorded with the client's name and alice's certificate", async () => {
    const deadline = performance.now() + 10_000;
    // The worker's actions reach the manager's catalogue shortly after it is healthy.
    for (;;) {
      const { actions } = await bridge.ok<{ actions: Array<{ name: string }> }>("list_actions");
      if (actions.some((a) => a.name === "touch_file")) break;
      assert.ok(performance.now() < deadline, "touch_file offered");
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await bridge.ok<{ job: { status: string; client: Record<string, string> } }>("run_action", { action: "touch_file", arguments: { path: file }, target: { worker_id: "e1" } });
    assert.equal(elicited.length, 1, "one elicitation/create reached the stdio client");
    assert.match(elicited[0]!.message, /touch_file/);
    assert.equal(r.job.status, "succeeded", JSON.stringify(r));
    assert.equal(existsSync(file), true, "the file was touched");
    assert.deepEqual(r.job.client, { name: "elicit-client", version: "4.5.6", operator: "alice" });
  });
});
