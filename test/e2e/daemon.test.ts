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
    await issue(fx.dir, ["--role", "viewer", "victor"]);
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

  it("a worker killed with SIGKILL: both clients get the resource update and the log notification within 1 s", async (t) => {
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
      t.diagnostic(`after the transition line: resource update ${Math.round(update.receivedAt - transition.receivedAt)} ms, log ${Math.round(logged.receivedAt - transition.receivedAt)} ms`);
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
  it("a viewer reads, but run_action answers E_FORBIDDEN naming the operator role, and nothing runs", async () => {
    const viewer = await HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "viewer", "victor"), "viewer-client");
    clients.push(viewer);
    const { workers: rows } = await viewer.ok<{ workers: Array<{ id: string }> }>("list_workers");
    assert.ok(rows.some((w) => w.id === "d1"));
    const { tools } = await viewer.client.listTools();
    for (const t of tools.filter((x) => x.annotations?.readOnlyHint !== true)) {
      assert.match(t.description ?? "", /needs the operator role/, `${t.name} says a viewer may not call it`);
    }
    const from = manager.lines.length;
    const r = await viewer.call("run_action", { action: "processes", arguments: { limit: 3 }, target: { worker_id: "d1" } });
    assert.equal(r.isError, true);
    assert.match((r.content[0] as { text: string }).text, /^E_FORBIDDEN: run_action needs the operator role; .*viewer "victor"/);
    for (const tool of ["cancel_job", "forget_worker", "approve_join", "deny_join"]) {
      const args = tool === "cancel_job" ? { job_id: "job-000000000000" } : tool === "forget_worker" ? { worker_id: "d2" } : { request_id: "abcdefgh" };
      const refused = await viewer.call(tool, args);
      assert.match((refused.content[0] as { text: string }).text, /^E_FORBIDDEN/, tool);
    }
    const { workers: still } = await viewer.ok<{ workers: Array<{ id: string }> }>("list_workers");
    assert.ok(still.some((w) => w.id === "d2"), "forget_worker did nothing");
    assert.equal(manager.lines.slice(from).filter((l) => l.audit === "job").length, 0, "no job started");
  });

  it("an operator runs a read-only built-in action: the audit line and get_job name the operator's certificate", async () => {
    const alice = clients[0]!;
    const from = manager.lines.length;
    const r = await alice.ok<{ job: { id: string; status: string } }>("run_action", { action: "processes", arguments: { limit: 3 }, target: { worker_id: "d1" } });
    const started = await manager.waitFor((l) => l.audit === "job" && l.jobId === r.job.id, 5000, "audit line", from);
    assert.deepEqual(started.client, { name: "client-a", version: "1.2.3", operator: "alice" });
    const job = await alice.ok<{ job: { client: Record<string, string> } }>("get_job", { job_id: r.job.id });
    assert.deepEqual(job.job.client, { name: "client-a", version: "1.2.3", operator: "alice" });
    await manager.waitFor((l) => l.audit === "job" && l.jobId === r.job.id && l.msg === "job ended", 10_000, "job ended", from);
    // The state file keeps it too: a restarted manager's get_job still names the operator.
    const deadline = performance.now() + 10_000;
    const saved = () => {
      const state = JSON.parse(readFileSync(join(fx.dir, "state.json"), "utf8")) as { jobs?: { jobs: Array<{ id: string; client: Record<string, string> }> } };
      return state.jobs?.jobs.find((j) => j.id === r.job.id);
    };
    while (!saved() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(saved()?.client, { name: "client-a", version: "1.2.3", operator: "alice" });
  });

  it("a request carrying an Origin not allowed is refused 403; without Origin it passes", async () => {
    const tls = mutualTlsFetch(loadTlsMaterial({ ca: fx.certs.ca, ...personCert(fx.dir, "operator", "alice") }, "operator"));
    const refused = await tls.fetch(mcpUrl(), { method: "POST", headers: { ...MCP_HEADERS, origin: "https://evil.example" }, body: INITIALIZE });
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /Origin "https:\/\/evil.example" is not allowed/);
    await manager.waitFor((l) => /Origin not allowed/.test(String(l.msg)) && l.origin === "https://evil.example", 2000, "origin refusal logged");
    const fine = await tls.fetch(mcpUrl(), { method: "POST", headers: MCP_HEADERS, body: INITIALIZE });
    assert.equal(fine.status, 200);
    assert.ok(fine.headers.get("mcp-session-id"));
    await fine.text();
    await tls.close();
  });

  it("a revoked operator certificate: its open session is closed and it is refused from then on", async () => {
    const bob = clients[1]!;
    const from = manager.lines.length;
    const r = await runCli(["certs", "revoke", "bob", "--role", "operator", "--dir", fx.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^operator "bob": revoked serial/);
    await manager.waitFor((l) => /MCP session closed: its certificate was revoked/.test(String(l.msg)) && l.operator === "bob", 5000, "bob's session closed", from);
    await assert.rejects(bob.ok("list_workers"));
    await assert.rejects(HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "operator", "bob")));
    const alice = clients[0]!;
    assert.ok((await alice.ok<{ workers: unknown[] }>("list_workers")).workers.length > 0, "alice is not touched");
  });
});

describe("the daemon's MCP session limits: a cap, idle sessions closed, allowed origins", () => {
  const fx = useCerts("daemon-limits", [], { before, after });
  let manager: ManagerProc;
  let tls: ReturnType<typeof mutualTlsFetch>;
  const mcpUrl = () => `https://127.0.0.1:${manager.port}/mcp`;
  const initialize = (headers: Record<string, string> = {}) => tls.fetch(mcpUrl(), { method: "POST", headers: { ...MCP_HEADERS, ...headers }, body: INITIALIZE });

  // The earlier tests' sessions fill the cap of 2 until they are idle for 1 s.
  const earlierSessionsGone = async () => {
    const opened = manager.lines.filter((l) => l.msg === "MCP session opened").length;
    const closed = () => manager.lines.filter((l) => l.msg === "MCP session closed").length;
    if (closed() < opened) await manager.waitFor(() => closed() >= opened, 5000, "earlier sessions reaped");
  };

  before(async () => {
    await issue(fx.dir, ["--role", "operator", "alice"]);
    manager = await ManagerProc.start(fx.certs, ["--daemon", "--max-mcp-sessions", "2", "--mcp-idle-timeout", "1s", "--allowed-origins", "https://console.example"]);
    tls = mutualTlsFetch(loadTlsMaterial({ ca: fx.certs.ca, ...personCert(fx.dir, "operator", "alice") }, "operator"));
  });
  after(() => tls?.close());

  it("over --max-mcp-sessions: 503 with the reason and a log line; an idle session is closed and makes room", async () => {
    const opened: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await initialize();
      assert.equal(res.status, 200);
      opened.push(res.headers.get("mcp-session-id")!);
      await res.text();
    }
    const over = await initialize();
    assert.equal(over.status, 503);
    assert.match(((await over.json()) as { error: { message: string } }).error.message, /too many MCP sessions open at once \(limit 2, --max-mcp-sessions\)/);
    await manager.waitFor((l) => /too many sessions/.test(String(l.msg)) && l.max === 2, 2000, "over-cap logged");
    // Nothing is open on either session (no notification stream): both are idle after 1 s.
    for (const id of opened) await manager.waitFor((l) => /MCP session idle/.test(String(l.msg)) && l.session === id, 5000, `session ${id} reaped`);
    const gone = await tls.fetch(mcpUrl(), { method: "POST", headers: { ...MCP_HEADERS, "mcp-session-id": opened[0]! }, body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }) });
    assert.equal(gone.status, 404, "a reaped session is unknown");
    await gone.text();
    const again = await initialize();
    assert.equal(again.status, 200, "room again");
    await again.text();
  });

  it("an allowed origin passes; another is refused", async () => {
    const ok = await initialize({ origin: "https://console.example" });
    assert.equal(ok.status, 200);
    await ok.text();
    const refused = await initialize({ origin: "http://localhost:8080" });
    assert.equal(refused.status, 403);
    await refused.text();
  });

  it("closing a client ends its session on the manager at once", async () => {
    await earlierSessionsGone();
    const client = await HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "operator", "alice"));
    await client.ok("list_workers");
    const from = manager.lines.length;
    await client.close();
    await manager.waitFor((l) => l.msg === "MCP session closed", 2000, "session closed by DELETE", from);
  });

  it("SIGTERM: the daemon closes its MCP sessions and exits 0", async () => {
    await earlierSessionsGone();
    const client = await HttpMcp.connect(manager.port, fx.certs.ca, personCert(fx.dir, "operator", "alice"));
    await client.ok("list_workers");
    const from = manager.lines.length;
    const started = performance.now();
    manager.kill("SIGTERM");
    const exit = await manager.exited;
    assert.equal(exit.code, 0);
    assert.ok(performance.now() - started < 5000, `stopped in ${Math.round(performance.now() - started)} ms`);
    assert.ok(manager.lines.slice(from).some((l) => l.msg === "MCP session closed"), "the session was closed");
    await client.close().catch(() => {});
  });
});
