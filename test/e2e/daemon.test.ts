import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent, fetch } from "undici";
import { JOIN_SERVERNAME } from "../../src/protocol/join.js";
import { mutualTlsFetch } from "../../src/client/connect.js";
import { loadTlsMaterial } from "../../src/tls/contexts.js";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { HttpMcp, personCert } from "../helpers/mcp-http.js";
import { runCli, type Proc } from "../helpers/processes.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

const INITIALIZE = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "probe", version: "0" } },
});
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

async function issue(dir: string, args: string[]): Promise<void> {
  const r = await runCli(["certs", "issue", ...args, "--dir", dir]);
  assert.equal(r.code, 0, r.stderr);
}

describe("the manager as a service: MCP over HTTPS at /mcp for operator and viewer certificates", () => {
  const fx = useCerts("daemon", ["d1", "d2"], { before, after });
  let manager: ManagerProc;
  let foreignDir: string;
  const workers = new Map<string, Proc>();
  const clients: HttpMcp[] = [];
  const mcpUrl = () => `https://127.0.0.1:${manager.port}/mcp`;

  before(async () => {
    await issue(fx.dir, ["--role", "operator", "alice"]);
    await issue(fx.dir, ["--role", "operator", "bob"]);
    foreignDir = join(fx.dir, "foreign");
    const init = await runCli(["certs", "init", "--dir", foreignDir, "--fleet", "test"]);
    assert.equal(init.code, 0, init.stderr);
    await issue(foreignDir, ["--role", "operator", "mallory"]);
    manager = await ManagerProc.start(fx.certs, ["--daemon"]);
    for (const id of ["d1", "d2"]) workers.set(id, startWorker(fx.certs, id, manager.url));
    for (const id of ["d1", "d2"]) await manager.waitForState(id, "healthy", 10_000);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
  });

  it("certs issue --role operator writes operators/<name>.pem; certs list shows its role", async () => {
    const list = await runCli(["certs", "list", "--dir", fx.dir, "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const rows = JSON.parse(list.stdout) as Array<{ id: string; role: string; current: boolean }>;
    assert.deepEqual(rows.filter((r) => r.role === "operator").map((r) => [r.id, r.current]), [["alice", true], ["bob", true]]);
    assert.equal(loadTlsMaterial({ ca: fx.certs.ca, ...personCert(fx.dir, "operator", "alice") }, "operator").self.identity.id, "alice");
  });

  it("two HTTP clients at once list the workers", async () => {
    clients.push(await HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "operator", "alice"), "client-a"));
    clients.push(await HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "operator", "bob"), "client-b"));
    for (const c of clients) {
      const { workers: rows } = await c.ok<{ workers: Array<{ id: string; state: string }> }>("list_workers");
      assert.deepEqual(rows.map((w) => [w.id, w.state]).sort(), [["d1", "healthy"], ["d2", "healthy"]]);
      const summary = await c.ok<{ counts: { healthy: number; total: number } }>("get_fleet_summary");
      assert.deepEqual([summary.counts.healthy, summary.counts.total], [2, 2]);
    }
    await manager.waitFor((l) => l.msg === "MCP session opened" && l.operator === "bob", 2000, "session logged with its operator");
  });

  it("a worker killed with SIGKILL: both clients get the resource update and the log notification within 1 s", async () => {
    for (const c of clients) await c.client.subscribeResource({ uri: "fleet://workers" });
    const from = manager.lines.length;
    workers.get("d2")!.kill("SIGKILL");
    const transition = await manager.waitForState("d2", "unhealthy", 5000, from);
    for (const c of clients) {
      const update = await c.waitFor(c.updated, (u) => u.uri === "fleet://workers" && u.receivedAt >= transition.receivedAt - 50, 3000, "resource update");
      const logged = await c.waitFor(c.logging, (l) => (l.data as { worker?: string }).worker === "d2" && (l.data as { to?: string }).to === "unhealthy", 3000, "log notification");
      assert.ok(update.receivedAt - transition.receivedAt < 1000, `update after ${update.receivedAt - transition.receivedAt} ms`);
      assert.ok(logged.receivedAt - transition.receivedAt < 1000, `log after ${logged.receivedAt - transition.receivedAt} ms`);
      assert.equal(logged.level, "warning");
    }
  });

  it("no client certificate: the TLS gate drops the connection", async () => {
    const agent = new Agent({ connect: { ca: readFileSync(fx.certs.ca), checkServerIdentity: () => undefined } });
    const from = manager.lines.length;
    await assert.rejects(fetch(mcpUrl(), { method: "POST", headers: MCP_HEADERS, body: INITIALIZE, dispatcher: agent }), /fetch failed/);
    const line = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "refusal logged", from);
    assert.equal(line.reason, "no client certificate");
    await agent.close();
  });

  it("a join connection (no certificate, the join name) is answered 401 on /mcp", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(mcpUrl(), { method: "POST", headers: MCP_HEADERS, servername: JOIN_SERVERNAME, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(INITIALIZE);
    });
    assert.equal(status, 401);
  });

  it("an operator certificate of another CA: the TLS gate drops the connection", async () => {
    const foreign = personCert(foreignDir, "operator", "mallory");
    const agent = new Agent({
      connect: { ca: readFileSync(fx.certs.ca), cert: readFileSync(foreign.cert), key: readFileSync(foreign.key), checkServerIdentity: () => undefined },
    });
    const from = manager.lines.length;
    await assert.rejects(fetch(mcpUrl(), { method: "POST", headers: MCP_HEADERS, body: INITIALIZE, dispatcher: agent }), /fetch failed/);
    const line = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "refusal logged", from);
    // Its CA has the same name as ours (same fleet name): found by name, refused by signature.
    assert.match(String(line.reason), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/);
    await agent.close();
  });

  it("a worker certificate on /mcp: 403, saying it belongs at /worker, logged once for its address", async () => {
    const tls = mutualTlsFetch(loadTlsMaterial({ ca: fx.certs.ca, ...fx.certs.worker("d1") }, "worker"));
    const from = manager.lines.length;
    for (let i = 0; i < 3; i++) {
      const res = await tls.fetch(mcpUrl(), { method: "POST", headers: MCP_HEADERS, body: INITIALIZE });
      assert.equal(res.status, 403);
      const body = (await res.json()) as { error: { message: string } };
      assert.match(body.error.message, /worker "d1" of fleet "test".*operator or viewer certificate.*connects at \/worker/);
    }
    await tls.close();
    const line = await manager.waitFor((l) => /MCP refused/.test(String(l.msg)), 2000, "refusal logged", from);
    assert.equal(line.address, "127.0.0.1");
    assert.equal(manager.lines.slice(from).filter((l) => /MCP refused/.test(String(l.msg))).length, 1, "one line for one cause from one address");
  });

  it("an operator certificate on the worker path: closed with the wrong-role code", async () => {
    const alice = personCert(fx.dir, "operator", "alice");
    const outcome = await rawClient(manager.url, { ca: fx.certs.ca, ...alice }, (ws) => ws.send(JSON.stringify(helloFor("alice")))).done;
    assert.equal(outcome.closeCode, 4003);
  });
});
