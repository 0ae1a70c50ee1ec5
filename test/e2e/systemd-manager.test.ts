import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../helpers/fleet.js";
import { HttpMcp } from "../helpers/mcp-http.js";
import { Container, SYSTEMD_ROOT, systemdUnavailable } from "../helpers/nspawn.js";
import { Proc } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = "mcp-fleet-manager.service";
const FLEET = "/etc/mcp-fleet/fleet";
const STATE = "/var/lib/mcp-fleet-manager/state.json";
const CLI = "/usr/local/bin/mcp-fleet";
const unavailable = systemdUnavailable();
if (unavailable) console.log(`# skipping the real-systemd manager test: ${unavailable}`);

/** What the installer may touch, listed to show that --uninstall --purge puts it all back. */
const SNAPSHOT =
  "find /etc /opt /usr /srv /home /root /var/lib -xdev 2>/dev/null | grep -v -e '^/var/lib/systemd/timers/' -e '^/var/lib/systemd/random-seed' | sort";

/** A port free on loopback now: the container shares this machine's network, and the unit's port is fixed. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `probe` until it returns a value, every 200 ms, for at most `timeoutMs`; then fails with `why()`. */
async function until<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string, why: () => Promise<string>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const got = await probe().catch(() => undefined);
    if (got !== undefined) return got;
    if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms:\n${await why()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

type Row = { id: string; state: string };

describe("the manager unit under a real systemd (a minimal Debian host in systemd-nspawn)", { skip: unavailable ?? false }, () => {
  let box: Container | undefined;
  let worker: Proc | undefined;
  const clients: HttpMcp[] = [];
  let host: { path: string; cleanup: () => Promise<void> } | undefined;
  let port = 0;
  let untouched = "";
  let workerId = "";
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    worker?.kill("SIGTERM");
    await box?.poweroff();
    await host?.cleanup();
  });

  const journal = async () => (await box!.try(`systemctl status --no-pager -n 30 ${UNIT}; journalctl --no-pager -n 40 -u ${UNIT}`)).stdout;
  const show = async (property: string) => (await box!.sh(`systemctl show -p ${property} --value ${UNIT}`)).trim();
  /** The service's main process; 0 (no process) would make `kill 0` signal the shell's own process group. */
  const mainPid = async () => {
    const pid = Number(await show("MainPID"));
    assert.ok(Number.isInteger(pid) && pid > 1, `${UNIT} has a main process (MainPID=${pid})`);
    return pid;
  };
  /** Resolves once the running unit serves /mcp (its log says so after its invocation started). */
  const serving = (invocation: string) =>
    until(
      async () => ((await box!.sh(`journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=${invocation}`)).includes("serving MCP over HTTPS") ? true : undefined),
      30_000,
      "serving line",
      journal,
    );
  /** An operator's client, connected to the unit over HTTP with the certificate copied out of the container. */
  const operator = async () => {
    const c = await HttpMcp.connect(port, join(host!.path, "ca.pem"), { cert: join(host!.path, "alice.pem"), key: join(host!.path, "alice-key.pem") }, "systemd-manager-test");
    clients.push(c);
    return c;
  };
  const copyOut = async (inside: string, name: string) => writeFileSync(join(host!.path, name), await box!.sh(`cat ${inside}`), { mode: 0o600 });

  before(
    async () => {
      host = await tempDir("systemd-manager");
      port = await freePort();
      box = await Container.boot(SYSTEMD_ROOT, [{ host: REPO, inside: "/src" }]);
      // npm beside the bound node, as a package installs it (binding npm-cli.js itself breaks its relative imports).
      await box.sh("ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm");
      untouched = await box.sh(SNAPSHOT);
    },
    { timeout: 120_000 },
  );

  it("install-manager.sh creates a fleet and starts the unit as its system user, the private keys root's alone", async (t) => {
    const started = performance.now();
    const r = await box!.try(`/src/scripts/install-manager.sh --fleet sdlab --port ${port} --host 127.0.0.1 --no-mdns`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await serving(await show("InvocationID"));
    t.diagnostic(`serving ${Math.round(performance.now() - started)} ms after the installer started`);

    const uid = (await box!.sh("id -u mcp-fleet-manager")).trim();
    assert.notEqual(uid, "0");
    assert.equal((await box!.sh(`stat -c %u /proc/${await mainPid()}`)).trim(), uid, "the service runs as its system user");
    assert.equal((await box!.sh(`stat -c '%a %U' ${FLEET}`)).trim(), "750 mcp-fleet-manager", "the service owns the fleet directory");
    for (const key of ["ca-key.pem", "manager-key.pem"]) {
      assert.equal((await box!.sh(`stat -c '%a %U' ${FLEET}/${key}`)).trim(), "600 root", key);
      const read = await box!.try(`setpriv --reuid=${uid} --regid=${uid} --clear-groups cat ${FLEET}/${key}`);
      assert.notEqual(read.code, 0, `the service's user cannot read ${key} on disk`);
    }
    const log = await box!.sh(`journalctl --no-pager -o cat -u ${UNIT}`);
    assert.doesNotMatch(log, /enrollment disabled/, "the CA key reached the service (LoadCredential)");
    assert.equal(await show("NRestarts"), "0", "no restart loop");
  });

  it("an operator certificate issued on the host lists a worker that joined with a token made there", async (t) => {
    // As an operator does on the manager's host: as root, with the CLI the installer put on the PATH.
    const issued = await box!.try(`${CLI} certs issue --role operator alice`);
    assert.equal(issued.code, 0, `${issued.stdout}\n${issued.stderr}`);
    await copyOut(`${FLEET}/ca.pem`, "ca.pem");
    await copyOut(`${FLEET}/operators/alice.pem`, "alice.pem");
    await copyOut(`${FLEET}/operators/alice-key.pem`, "alice-key.pem");
    const joinString = (await box!.sh(`${CLI} token create --ttl 10m --uses 1`)).trim();
    assert.match(joinString, /^mcpf1:/);
    // tokens.json was made by root; it stays the service's, which records the join in it.
    assert.equal((await box!.sh(`stat -c '%a %U' ${FLEET}/tokens.json`)).trim(), "600 mcp-fleet-manager");

    const joined = performance.now();
    const state = join(host!.path, "worker-state");
    // The join string through the environment, as the worker's unit hands it over: not in the process list.
    worker = new Proc("joining worker", ["worker", "--state-dir", state, "--manager", `wss://127.0.0.1:${port}`, "--no-mdns"], { MCP_FLEET_JOIN: joinString });
    const c = await operator();
    const row = await until(
      async () => (await c.ok<{ workers: Row[] }>("list_workers")).workers.find((w) => w.state === "healthy"),
      30_000,
      "healthy worker",
      async () => `${worker!.lines.slice(-6).map((l) => JSON.stringify(l)).join("\n")}\n${await journal()}`,
    );
    workerId = row.id;
    t.diagnostic(`${workerId} joined and healthy ${Math.round(performance.now() - joined)} ms after the worker started`);
    const tokens = JSON.parse(await box!.sh(`${CLI} token list --json`)) as Array<{ used: number }>;
    assert.equal(tokens[0]?.used, 1, "the unprivileged service recorded the join in tokens.json");
    assert.match(await box!.sh(`cat ${FLEET}/inventory.json`), new RegExp(`"id": ?"${workerId}"`), "and the certificate it issued in inventory.json");
    assert.equal((await box!.sh(`ls ${FLEET} | grep -c '\\.lock$' || true`)).trim(), "0", "no lock file left");
  });

  it("kill -9 of its main process: systemd restarts it, the state is kept, and a client reconnects and lists the worker healthy", async (t) => {
    // The state file holds the worker before the kill (it is written after each change).
    await until(async () => ((await box!.sh(`cat ${STATE} 2>/dev/null || true`)).includes(workerId) ? true : undefined), 15_000, "worker in the state file", journal);
    const pid = await mainPid();
    const killedAt = Date.now();
    const killed = performance.now();
    await box!.sh(`kill -9 ${pid}`);
    await until(async () => ((await show("ActiveState")) === "active" && Number(await show("MainPID")) > 1 && Number(await show("MainPID")) !== pid ? true : undefined), 30_000, "restart", journal);
    assert.equal(await show("NRestarts"), "1");
    await serving(await show("InvocationID"));
    t.diagnostic(`serving again ${Math.round(performance.now() - killed)} ms after kill -9`);

    const c = await until(() => operator(), 15_000, "MCP session with the restarted manager", journal);
    // Its history from before the kill is there: the restarted manager read it from its state file.
    const { events } = await c.ok<{ events: Array<{ at: string; to: string }> }>("get_worker_events", { worker_id: workerId });
    assert.ok(events.some((e) => e.to === "healthy" && Date.parse(e.at) < killedAt), `a transition from before the kill: ${JSON.stringify(events)}`);
    await until(async () => (await c.ok<{ workers: Row[] }>("list_workers")).workers.find((w) => w.id === workerId && w.state === "healthy"), 30_000, "worker healthy again", journal);
    t.diagnostic(`${workerId} healthy again ${Math.round(performance.now() - killed)} ms after kill -9`);
  });

  it("certs revoke on the host (as root): the service reads the new CRL and refuses the operator", async () => {
    const open = await operator();
    await open.ok("list_workers");
    const invocation = await show("InvocationID");
    const r = await box!.try(`${CLI} certs revoke --role operator alice`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await until(
      async () => ((await box!.sh(`journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=${invocation}`)).match(/"msg":"CRL reloaded"/) ? true : undefined),
      15_000,
      "CRL reload",
      journal,
    );
    await assert.rejects(open.ok("list_workers"), "the open session is closed");
    await until(
      async () => {
        try {
          const c = await operator();
          await c.ok("list_workers");
          return undefined;
        } catch {
          return true;
        }
      },
      15_000,
      "refusal of the revoked operator",
      journal,
    );
  });

  it("the installer run again over the running service keeps the fleet and the state; systemctl stop ends it cleanly", async () => {
    const ca = await box!.sh(`cat ${FLEET}/ca.pem`);
    const invocation = await show("InvocationID");
    const r = await box!.try("/src/scripts/install-manager.sh");
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /kept the fleet installed/);
    assert.notEqual(await show("InvocationID"), invocation, "restarted on the new install");
    await serving(await show("InvocationID"));
    assert.equal(await box!.sh(`cat ${FLEET}/ca.pem`), ca, "the same CA");
    assert.equal((await box!.sh(`grep -c 'MCP_FLEET_PORT="${port}"' /etc/mcp-fleet/manager.env`)).trim(), "1", "the settings kept");
    await box!.sh(`${CLI} certs issue --role viewer bob`);
    await copyOut(`${FLEET}/viewers/bob.pem`, "bob.pem");
    await copyOut(`${FLEET}/viewers/bob-key.pem`, "bob-key.pem");
    const c = await HttpMcp.connect(port, join(host!.path, "ca.pem"), { cert: join(host!.path, "bob.pem"), key: join(host!.path, "bob-key.pem") });
    clients.push(c);
    const { workers } = await c.ok<{ workers: Row[] }>("list_workers");
    assert.ok(workers.some((w) => w.id === workerId), `the worker is still known: ${JSON.stringify(workers)}`);

    await box!.sh(`systemctl stop ${UNIT}`);
    assert.equal(await show("ActiveState"), "inactive");
    assert.equal(await show("Result"), "success", "exit 0 on SIGTERM, and no restart after a stop");
  });

  it("--uninstall --purge leaves the file system as it was: no unit, no user", async () => {
    worker?.kill("SIGTERM");
    const r = await box!.try("/src/scripts/install-manager.sh --uninstall --purge");
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const now = new Set((await box!.sh(SNAPSHOT)).split("\n"));
    const was = new Set(untouched.split("\n"));
    assert.deepEqual({ left: [...now].filter((p) => !was.has(p)), lost: [...was].filter((p) => !now.has(p)) }, { left: [], lost: [] });
    const units = await box!.try(`systemctl list-units --all --no-legend 'mcp-fleet*'; systemctl list-unit-files --no-legend 'mcp-fleet*'`);
    assert.equal(units.stdout.trim(), "", "systemd knows no mcp-fleet unit");
    assert.notEqual((await box!.try("getent passwd mcp-fleet-manager")).code, 0, "the system user is gone");
  });
});
