import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startActionWorker, TOUCH_FILE, writeActionsDir } from "../helpers/actions.js";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { personCert } from "../helpers/mcp-http.js";
import { CLI, Proc, runCli, sleep } from "../helpers/processes.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A free loopback port with nothing listening on it: connecting is refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const TMUX = "mcp-fleet-operator-cli-test";
/** tmux on a socket of its own: the test's server, options and sessions touch no one else's. */
const tmux = (...args: string[]) => spawnSync("tmux", ["-L", `${TMUX}-${process.pid}`, "-f", "/dev/null", ...args], { encoding: "utf8", timeout: 10_000 });
const hasTmux = () => spawnSync("tmux", ["-V"], { encoding: "utf8" }).status === 0;
const NO_TMUX = "tmux is not installed (.ci/run installs it: apt-get install -y tmux)";

/** tmux: CI's setup installs it (.ci/run); a run without it skips the terminal checks with one line. */
function tmuxReady(): boolean {
  return hasTmux();
}

/** Polls `probe` every 50 ms until it returns something, for at most `timeoutMs`. */
async function poll<T>(probe: () => T | undefined, timeoutMs: number, what: string, last: () => string = () => ""): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const hit = probe();
    if (hit !== undefined) return hit;
    if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; last seen:\n${last()}`);
    await sleep(50);
  }
}

/**
 * A tmux pane's command line: `args` run by the CLI, then its exit status printed by the shell, which waits for
 * it (tmux itself may reap a pane's process many seconds after the pane closed). The shell's INT trap keeps it
 * alive past the Ctrl-C meant for the CLI; the CLI gets the default disposition back at exec.
 */
function paneCommand(env: Record<string, string>, args: string[]): string {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return `sh -c 'trap : INT; env ${vars.join(" ")} ${process.execPath} ${CLI} ${args.join(" ")}; echo "exit=$?"'`;
}

/** A session 160 columns wide running `command`; its pane stays, with what it showed, after the command ends. */
const paneStart = (session: string, rows: number, command: string) =>
  tmux("new-session", "-d", "-s", session, "-x", "160", "-y", String(rows), command, ";", "set-option", "-t", session, "remain-on-exit", "on");

/** The exit status a paneCommand printed, once it has. */
function paneExit(timeoutMs: number, screen: () => string): Promise<string> {
  return poll(() => /exit=(\d+)$/m.exec(screen())?.[1], timeoutMs, "the command to end", screen);
}

describe("the operator CLI: status, workers, events, run and jobs over MCP to a daemon manager", () => {
  const fx = useCerts("operator-cli", ["o1", "o2", "o3"], { before, after });
  let manager: ManagerProc;
  let actionsDir: string;
  const touched = join(tmpdir(), `mcp-fleet-opcli-${process.pid}`);
  const workers = new Map<string, Proc>();
  // The connection as an operator's shell sets it: the manager and the CA in the environment, the certificate
  // found beside the CA (operators/alice.pem is the only one).
  const env = () => ({ MCP_FLEET_MANAGER: `https://127.0.0.1:${manager.port}`, MCP_FLEET_CA: fx.certs.ca, NO_COLOR: "1" });

  const operator = (args: string[], extra: Record<string, string> = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env(), ...extra }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  const jsonOf = <T>(r: Run): T => {
    assert.ok(r.stdout.trim().startsWith("{"), `JSON on stdout, got: ${r.stdout}\nstderr: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    const alice = await runCli(["certs", "issue", "--role", "operator", "alice", "--dir", fx.dir]);
    assert.equal(alice.code, 0, alice.stderr);
    // Expiring within 14 days: degraded, with the reason cert_expiring.
    const soon = await runCli(["certs", "issue", "soon", "--days", "5", "--dir", fx.dir]);
    assert.equal(soon.code, 0, soon.stderr);
    actionsDir = writeActionsDir(mkdtempSync(join(tmpdir(), "mcp-fleet-opcli-actions-")), [TOUCH_FILE]);
    manager = await ManagerProc.start(fx.certs, ["--daemon"]);
    workers.set("o1", startActionWorker(fx.certs, "o1", manager.url, { actionsDir, mcpServers: join(actionsDir, "none.json") }));
    for (const id of ["o2", "o3"]) workers.set(id, startWorker(fx.certs, id, manager.url));
    for (const id of ["o1", "o2", "o3"]) await manager.waitForState(id, "healthy", 15_000);
  });
  after(() => {
    tmux("kill-server");
    rmSync(touched, { force: true });
    if (actionsDir) rmSync(actionsDir, { recursive: true, force: true });
  });

  it("status --json: exit 0, three healthy workers, the tools' structured answers", async () => {
    const r = await operator(["status", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const s = jsonOf<{ summary: { counts: Record<string, number>; connected: number }; unhealthy: { workers: unknown[] }; degraded: { workers: unknown[] } }>(r);
    assert.deepEqual(s.summary.counts, { healthy: 3, degraded: 0, unhealthy: 0, offline: 0, total: 3 });
    assert.equal(s.summary.connected, 3);
    assert.deepEqual([s.unhealthy.workers, s.degraded.workers], [[], []]);
    const table = await operator(["status"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^3 workers: 3 healthy, 0 degraded, 0 unhealthy, 0 offline; 3 connected\n\nno problem workers\n$/);
  });

  it("workers: a table of the three, and with --json every row", async () => {
    const r = await operator(["workers"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^WORKER +STATE +REASONS +CONNECTED +HEARTBEAT +LABELS$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/ +/).slice(0, 2)), [["o1", "healthy"], ["o2", "healthy"], ["o3", "healthy"]]);
    const j = jsonOf<{ total: number; workers: Array<{ id: string }>; nextCursor?: unknown }>(await operator(["workers", "--json"]));
    assert.equal(j.total, 3);
    assert.deepEqual(j.workers.map((w) => w.id), ["o1", "o2", "o3"]);
    assert.equal("nextCursor" in j, false, "all pages, one list");
    const events = await operator(["events"]);
    assert.equal(events.code, 0, events.stderr);
    assert.match(events.stdout, /^TIME +WORKER +FROM +TO +WHY\n/);
    assert.match(events.stdout, /\n\S+Z +o3 +- +healthy/);
  });

  let jobId = "";
  it("run processes --on all: every invocation succeeds, exit 0; the job names alice", async () => {
    const r = await operator(["run", "processes", "--on", "all", "limit=3", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = jsonOf<{ job: { id: string; status: string; targets: number; client: { operator?: string }; arguments: unknown }; invocations: Array<{ worker: string; status: string }> }>(r);
    assert.equal(j.job.status, "succeeded");
    assert.equal(j.job.targets, 3);
    assert.deepEqual(j.job.arguments, { limit: 3 }, "limit=3 is the integer its parameter declares");
    assert.equal(j.job.client.operator, "alice");
    assert.deepEqual(j.invocations.map((v) => [v.worker, v.status]), [["o1", "succeeded"], ["o2", "succeeded"], ["o3", "succeeded"]]);
    jobId = j.job.id;
    const table = await operator(["run", "processes", "--on", "o2"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^job job-\S+: processes succeeded on 1 worker \(1 succeeded\)/);
    assert.match(table.stdout, /\no2 +succeeded +/);
  });

  it("jobs lists the recent jobs; jobs <id> --json is the job with its invocations", async () => {
    const r = await operator(["jobs"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^JOB +ACTION +STATUS +TARGETS +INVOCATIONS +BY +CREATED\n/);
    assert.match(r.stdout, new RegExp(`\\n${jobId} +processes +succeeded +3 +3 succeeded +alice `));
    const one = jsonOf<{ job: { id: string }; invocations: unknown[] }>(await operator(["jobs", jobId, "--json"]));
    assert.equal(one.job.id, jobId);
    assert.equal(one.invocations.length, 3);
    const unknown = await operator(["jobs", "job-000000000000"]);
    assert.equal(unknown.code, 64, "an unknown job is bad usage");
    assert.match(unknown.stderr, /E_UNKNOWN_JOB/);
  });

  it("a destructive action: refused without a terminal or --yes (exit 64, nothing ran); --yes confirms it", async () => {
    const from = manager.lines.length;
    const refused = await operator(["run", "touch_file", "--on", "o1", `path=${touched}`]);
    assert.equal(refused.code, 64, refused.stderr);
    assert.match(refused.stderr, /touch_file is destructive: not confirmed, as there is no terminal to ask on; pass --yes/);
    assert.equal(existsSync(touched), false);
    assert.equal(manager.lines.slice(from).filter((l) => l.audit === "job").length, 0, "no job started");
    const confirmed = await operator(["run", "touch_file", "--on", "o1", `path=${touched}`, "--yes"]);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.equal(existsSync(touched), true);
  });

  it("on a terminal (tmux), the confirmation is asked y/N: n runs nothing (exit 1), y runs it", async (t) => {
    if (!tmuxReady()) return t.skip(NO_TMUX);
    const e = env();
    const file = `${touched}-tty`;
    const ask = async (session: string, answer: string) => {
      const command = paneCommand(e, ["run", "touch_file", "--on", "o1", `path=${file}`]);
      assert.equal(paneStart(session, 20, command).status, 0);
      const screen = () => tmux("capture-pane", "-p", "-t", session).stdout ?? "";
      await poll(() => (/Run the destructive action "touch_file" .* on 1 worker: o1\? \[y\/N\]/.test(screen()) ? true : undefined), 20_000, "the question", screen);
      tmux("send-keys", "-t", session, answer, "Enter");
      return paneExit(30_000, screen);
    };
    assert.equal(await ask("confirm-n", "n"), "1");
    assert.equal(existsSync(file), false, "declined: nothing ran");
    assert.equal(await ask("confirm-y", "y"), "0");
    assert.equal(existsSync(file), true);
    rmSync(file, { force: true });
  });

  it("a manager that cannot be reached, or refuses the TLS connection: exit 3 with the reason", async () => {
    const port = await closedPort();
    const refused = await operator(["status", "--manager", `https://127.0.0.1:${port}`]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, new RegExp(`cannot reach the manager at https://127\\.0\\.0\\.1:${port}/mcp: .*ECONNREFUSED`));
    assert.equal(refused.stdout, "");
    const runRefused = await operator(["run", "processes", "--on", "all", "--manager", `https://127.0.0.1:${port}`]);
    assert.equal(runRefused.code, 3, runRefused.stderr);
    // Another fleet's CA and operator: the manager's certificate is not its CA's, nor alice's its.
    const foreign = join(fx.dir, "foreign");
    assert.equal((await runCli(["certs", "init", "--dir", foreign, "--fleet", "test"])).code, 0);
    assert.equal((await runCli(["certs", "issue", "--role", "operator", "mallory", "--dir", foreign])).code, 0);
    const tls = await operator(["workers"], { MCP_FLEET_CA: join(foreign, "ca.pem") });
    assert.equal(tls.code, 3, tls.stderr);
    assert.match(tls.stderr, /cannot reach the manager/);
  });

  it("bad usage and settings exit 64: an unknown flag, no usable certificate, a worker's certificate", async () => {
    const flag = await operator(["status", "--no-such-flag"]);
    assert.equal(flag.code, 64, flag.stderr);
    const missing = await operator(["run", "processes"]);
    assert.equal(missing.code, 64, "--on is required");
    const noCert = await operator(["status"], { MCP_FLEET_CA: join(fx.dir, "workers", "o1.pem") });
    assert.equal(noCert.code, 64, noCert.stderr);
    assert.match(noCert.stderr, /no operator or viewer certificate in .*: pass --cert and --key/);
    const worker = await operator(["status", "--cert", fx.certs.worker("o1").cert, "--key", fx.certs.worker("o1").key]);
    assert.equal(worker.code, 64, worker.stderr);
    assert.match(worker.stderr, /is a worker certificate; this command needs a operator or viewer certificate/);
    const alice = personCert(fx.dir, "operator", "alice");
    const explicit = await operator(["status", "--cert", alice.cert, "--key", alice.key]);
    assert.equal(explicit.code, 0, explicit.stderr);
  });

  it("a viewer's certificate reads (status 0) but may not run: E_FORBIDDEN, exit 64, nothing ran", async () => {
    assert.equal((await runCli(["certs", "issue", "--role", "viewer", "victor", "--dir", fx.dir])).code, 0);
    const victor = personCert(fx.dir, "viewer", "victor");
    const who = { MCP_FLEET_CERT: victor.cert, MCP_FLEET_KEY: victor.key };
    assert.equal((await operator(["status"], who)).code, 0);
    const from = manager.lines.length;
    const r = await operator(["run", "processes", "--on", "all"], who);
    assert.equal(r.code, 64, r.stderr);
    assert.match(r.stderr, /E_FORBIDDEN: run_action needs the operator role/);
    assert.equal(manager.lines.slice(from).filter((l) => l.audit === "job").length, 0, "no job started");
  });

  it("a degraded worker: status exits 1 and lists it; once it stopped cleanly (offline), 0 again", async () => {
    const from = manager.lines.length;
    const soon = startWorker(fx.certs, "soon", manager.url);
    await manager.waitForState("soon", "degraded", 15_000, from);
    const r = await operator(["status"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^4 workers: 3 healthy, 1 degraded, 0 unhealthy, 0 offline/);
    assert.match(r.stdout, /\nsoon +degraded +cert_expiring +yes/);
    assert.equal((await operator(["workers", "--state", "degraded"])).code, 1);
    await soon.stop();
    await manager.waitForState("soon", "offline", 10_000, from);
    const after = await operator(["status", "--json"]);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(jsonOf<{ summary: { counts: { offline: number } } }>(after).summary.counts.offline, 1);
  });

  it("status --watch in tmux redraws a SIGKILLed worker as unhealthy within 2 s; events --follow prints it; Ctrl-C ends the watch", async (t) => {
    if (!tmuxReady()) return t.skip(NO_TMUX);
    const e = env();
    const started = paneStart("watch", 50, paneCommand(e, ["status", "--watch"]));
    assert.equal(started.status, 0, started.stderr);
    const screen = () => tmux("capture-pane", "-p", "-t", "watch").stdout ?? "";
    await poll(() => (/3 healthy, 0 degraded, 0 unhealthy, 1 offline; 3 connected/.test(screen()) ? true : undefined), 20_000, "three healthy workers on the screen", screen);
    assert.match(screen(), /no problem workers/);
    const follow = new Proc("events --follow", ["events", "--follow", "--json"], e);
    await poll(() => (follow.stdout.some((l) => /"worker":"o3"/.test(l)) ? true : undefined), 20_000, "the events so far", () => follow.stdout.join("\n"));
    // No wait for its subscription: once subscribed it reads the events after the last it printed, so a kill
    // before that is printed too.
    const from = manager.lines.length;
    const killedAt = performance.now();
    workers.get("o3")!.kill("SIGKILL");
    const shown = await poll(() => (/\no3 +unhealthy +connection_lost +no/.test(screen()) ? performance.now() : undefined), 5000, "o3 unhealthy on the screen", screen);
    const transition = await manager.waitForState("o3", "unhealthy", 5000, from);
    t.diagnostic(`o3 unhealthy: manager ${Math.round(transition.receivedAt - killedAt)} ms after the kill, on the tmux screen ${Math.round(shown - killedAt)} ms`);
    assert.ok(shown - killedAt < 2000, `shown ${Math.round(shown - killedAt)} ms after the kill`);
    assert.match(screen(), /4 workers: 2 healthy, 0 degraded, 1 unhealthy, 1 offline; 2 connected/);
    const line = await poll(() => follow.stdout.find((l) => /"worker":"o3"/.test(l) && /"to":"unhealthy"/.test(l)), 5000, "the transition from events --follow", () => follow.stdout.join("\n"));
    assert.equal((JSON.parse(line) as { from: string }).from, "healthy");
    follow.kill("SIGINT");
    assert.equal((await follow.exited).code, 0);
    tmux("send-keys", "-t", "watch", "C-c");
    assert.equal(await paneExit(5000, screen), "0");
  });

  it("an unhealthy worker: status and workers exit 2", async () => {
    const r = await operator(["status", "--json"]);
    assert.equal(r.code, 2, r.stderr);
    const s = jsonOf<{ unhealthy: { workers: Array<{ id: string }> } }>(r);
    assert.deepEqual(s.unhealthy.workers.map((w) => w.id), ["o3"]);
    const w = await operator(["workers", "--state", "unhealthy"]);
    assert.equal(w.code, 2, w.stderr);
    assert.match(w.stdout, /\no3 +unhealthy/);
    assert.equal((await operator(["workers", "--state", "healthy"])).code, 0, "the exit code is of the workers listed");
  });
});
