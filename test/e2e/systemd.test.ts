import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import type { RunResult } from "../../src/protocol/actions.js";
import { makeCerts, tempDir, useCerts, type CertSet } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { Container, SYSTEMD_ROOT, systemdUnavailable } from "../helpers/nspawn.js";
import { runCli, type LogLine } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = "mcp-fleet-worker.service";
const unavailable = systemdUnavailable();
if (unavailable) console.log(`# skipping the real-systemd test: ${unavailable}`);

/** What the installer may touch, listed to show that --uninstall puts it all back. Logs and systemd's own clocks change by themselves. */
const SNAPSHOT =
  "find /etc /opt /usr /srv /home /root /var/lib -xdev 2>/dev/null | grep -v -e '^/var/lib/systemd/timers/' -e '^/var/lib/systemd/random-seed' | sort";

/** A manager log line that may still be on its way: polled, bounded. */
async function untilLine(m: McpManager, pred: (l: LogLine) => boolean, timeoutMs: number, what: string, from: number, diagnose: () => Promise<string>): Promise<LogLine> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const hit = m.lines.slice(from).find(pred);
    if (hit) return hit;
    if (performance.now() > deadline) {
      const tail = m.lines.slice(-8).map((l) => JSON.stringify(l)).join("\n");
      throw new Error(`no ${what} within ${timeoutMs} ms.\nmanager:\n${tail}\nunit:\n${await diagnose()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Action files as the README's "Acting on the fleet" defines them: one read-only, one privileged (allowed by the
 * polkit rule install-worker.sh --allow-restart writes), and one the rule does not allow.
 */
const ACTIONS = {
  "whoami.json": { name: "whoami", description: "The agent's uid", argv: ["/usr/bin/id", "-u"], destructive: false },
  // What the unit lets the agent read: the system journal (its systemd-journal group) and root's processes.
  "dummy-journal.json": { name: "dummy_journal", description: "dummy.service's journal", argv: ["/usr/bin/journalctl", "--no-pager", "-o", "cat", "-u", "dummy.service"], destructive: false },
  "init.json": { name: "init", description: "PID 1's name", argv: ["/usr/bin/cat", "/proc/1/comm"], destructive: false },
  "restart-service.json": {
    name: "restart_service",
    description: "Restart one of this host's services",
    argv: ["/usr/bin/systemctl", "restart", "{unit}"],
    params: { unit: { type: "string", enum: ["dummy.service"] } },
    timeout: "60s",
    concurrency: 1,
  },
  "stop-service.json": {
    name: "stop_service",
    description: "Stop a service: the polkit rule allows restarts only",
    argv: ["/usr/bin/systemctl", "stop", "{unit}"],
    params: { unit: { type: "string", enum: ["dummy.service"] } },
  },
};
/** A unit whose every restart is visible: a new invocation id each time it starts. */
const DUMMY = "[Unit]\nDescription=a service the privileged action restarts\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n";

describe("the worker unit under a real systemd (a minimal Debian host in systemd-nspawn)", { skip: unavailable ?? false }, () => {
  let box: Container | undefined;
  let manager: McpManager | undefined;
  /** The manager the actions are asked of: in this process, on loopback, speaking the wire as the MCP tools do. */
  let wire: Manager | undefined;
  /** A manager that enrolls joining hosts, with a fleet of its own in a directory the container cannot see. */
  let enrolling: { manager: McpManager; certs: CertSet; cleanup: () => Promise<void> } | undefined;
  // Registered before useCerts' own clean-up, so the container is gone before its certificate directory is.
  after(async () => {
    await box?.poweroff();
    manager?.kill();
    enrolling?.manager.kill();
    await wire?.close();
    await enrolling?.cleanup();
  });
  const fx = useCerts("systemd", ["sd1"], { before, after });
  let untouched = "";

  const journal = async () => (await box!.try(`systemctl status --no-pager -n 30 ${UNIT}; journalctl --no-pager -n 30 -u ${UNIT}`)).stdout;
  const transition = (to: string, from: number, timeoutMs: number) =>
    untilLine(manager!, (l) => l.event === "transition" && l.worker === "sd1" && l.to === to, timeoutMs, `sd1 ${to}`, from, journal);
  const show = async (property: string) => (await box!.sh(`systemctl show -p ${property} --value ${UNIT}`)).trim();
  /** The service's main process; 0 (no process) would make `kill 0` signal the test's own process group. */
  const mainPid = async () => {
    const pid = Number(await show("MainPID"));
    assert.ok(Number.isInteger(pid) && pid > 1, `${UNIT} has a main process (MainPID=${pid})`);
    return pid;
  };

  before(
    async () => {
      manager = await McpManager.start(fx.certs);
      wire = await startManager({
        tls: { ca: fx.certs.ca, cert: fx.certs.managerCert, key: fx.certs.managerKey },
        host: "127.0.0.1",
        port: 0,
        heartbeatIntervalMs: 1000,
        missedHeartbeats: 3,
        log: createLogger({ name: "manager", level: "silent" }),
      });
      mkdirSync(join(fx.dir, "actions"));
      for (const [file, def] of Object.entries(ACTIONS)) writeFileSync(join(fx.dir, "actions", file), JSON.stringify(def, null, 2));
      // The checkout and the certificates, read-only, as an operator would copy them onto the host.
      box = await Container.boot(SYSTEMD_ROOT, [
        { host: REPO, inside: "/src" },
        { host: fx.dir, inside: "/certs" },
      ]);
      // npm beside the bound node, as a package installs it (binding npm-cli.js itself breaks its relative imports).
      await box.sh("ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm");
      // Part of the host before the agent comes: the uninstall leaves it as it is.
      await box.sh(`printf '${DUMMY}' > /etc/systemd/system/dummy.service && systemctl daemon-reload && systemctl start dummy.service`);
      untouched = await box.sh(SNAPSHOT);
    },
    { timeout: 120_000 },
  );

  it("install-worker.sh installs and starts the unit; the worker joins the manager on loopback and reports its disk", async (t) => {
    const from = manager!.lines.length;
    const started = performance.now();
    const r = await box!.try(
      `/src/scripts/install-worker.sh --ca /certs/ca.pem --cert /certs/workers/sd1.pem --key /certs/workers/sd1-key.pem --manager ${manager!.url} --no-mdns --labels role=systemd --action /certs/actions/whoami.json --action /certs/actions/dummy-journal.json --action /certs/actions/init.json`,
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    t.diagnostic(`installed in ${Math.round(performance.now() - started)} ms`);
    await transition("healthy", from, 30_000);
    t.diagnostic(`healthy ${Math.round(performance.now() - started)} ms after the installer started`);

    const s = await manager!.ok<{ source: string; status: { filesystems: Array<{ mount: string; size: number; usePercent: number }> | null } }>("get_worker_status", { worker_id: "sd1" });
    assert.equal(s.source, "worker");
    const rootFs = s.status.filesystems?.find((f) => f.mount === "/");
    assert.ok(rootFs && rootFs.size > 0, `the worker reports its root filesystem: ${JSON.stringify(s.status.filesystems)}`);

    // It runs as a user systemd allocated, which this host cannot name (no libnss-systemd): no passwd entry, no home.
    const uid = (await box!.sh(`stat -c %u /proc/${await mainPid()}`)).trim();
    assert.ok(Number(uid) >= 61184 && Number(uid) <= 65519, `a dynamic uid: ${uid}`);
    assert.notEqual((await box!.try(`getent passwd ${uid}`)).code, 0, "the dynamic user has no passwd entry here");
    assert.equal(await show("NRestarts"), "0", "no restart loop");
  });

  it("kill -9 of its main process: systemd restarts it and it is healthy again", async (t) => {
    const pid = await mainPid();
    const from = manager!.lines.length;
    const killed = performance.now();
    await box!.sh(`kill -9 ${pid}`);
    await transition("unhealthy", from, 5000);
    // RestartSec=5s, then a new session.
    await transition("healthy", from, 30_000);
    t.diagnostic(`healthy again ${Math.round(performance.now() - killed)} ms after kill -9`);
    assert.equal(await show("NRestarts"), "1");
    assert.notEqual(await mainPid(), pid);
  });

  it("systemctl stop: the worker says goodbye and is offline; the unit stopped cleanly", async () => {
    const from = manager!.lines.length;
    await box!.sh(`systemctl stop ${UNIT}`);
    await transition("offline", from, 10_000);
    assert.equal(await show("ActiveState"), "inactive");
    assert.equal(await show("Result"), "success", "exit 0 on SIGTERM");
  });

  /** The worker connected to the wire manager and offering `action`; polled, bounded. */
  const offering = async (action: string, timeoutMs: number) => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (wire!.connected("sd1")) {
        const list = await wire!.request("sd1", "actions.list", {}, { timeoutMs: 10_000 }).catch(() => null);
        if (list?.entries.some((e) => e.name === action)) return;
      }
      if (performance.now() > deadline) throw new Error(`sd1 does not offer ${action} within ${timeoutMs} ms:\n${await journal()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const runAction = (action: string, args: Record<string, string> = {}) =>
    wire!.request("sd1", "actions.run", { invocation: randomUUID(), action, arguments: args, timeoutMs: 30_000 }, { timeoutMs: 40_000 }) as Promise<RunResult>;
  const dummy = async (property: string) => (await box!.sh(`systemctl show -p ${property} --value dummy.service`)).trim();

  it("an action runs as the unit's dynamic user, not root; the journal and other users' processes are readable", async (t) => {
    const started = performance.now();
    // As an operator points an installed worker at another manager: its settings file, then a start.
    await box!.sh(`sed -i 's|^MCP_FLEET_MANAGER=.*|MCP_FLEET_MANAGER="wss://127.0.0.1:${wire!.port}"|' /etc/mcp-fleet/worker.env && systemctl start ${UNIT}`);
    await offering("whoami", 30_000);
    t.diagnostic(`offering its actions ${Math.round(performance.now() - started)} ms after the start`);
    const r = await runAction("whoami");
    assert.equal(r.status, "succeeded", JSON.stringify(r));
    const uid = (await box!.sh(`stat -c %u /proc/${await mainPid()}`)).trim();
    assert.equal(r.stdout.tail.trim(), uid, "the action ran as the agent's own user");
    assert.ok(Number(uid) >= 61184 && Number(uid) <= 65519, `a dynamic uid, not root: ${uid}`);

    // SupplementaryGroups=systemd-journal: the system's journal is readable, another unit's entries too.
    const j = await runAction("dummy_journal");
    assert.equal(j.status, "succeeded", JSON.stringify(j));
    assert.match(j.stdout.tail, /a service the privileged action restarts/);
    // ProtectProc=default: root's processes are visible (=invisible would hide PID 1).
    const init = await runAction("init");
    assert.equal(init.stdout.tail.trim(), "systemd", JSON.stringify(init));

    // The built-in diagnostics that need those two settings.
    const offered = new Set((await wire!.request("sd1", "actions.list", {}, { timeoutMs: 10_000 })).entries.map((e) => e.name));
    for (const [name, args, pattern] of [["journal", { unit: "dummy.service" }, /a service the privileged action restarts/], ["processes", { sort: "memory" }, /"systemd"/]] as const) {
      if (!offered.has(name)) {
        t.diagnostic(`no built-in ${name} on this worker`);
        continue;
      }
      const r = await runAction(name, args);
      assert.equal(r.status, "succeeded", JSON.stringify(r));
      assert.match(JSON.stringify(r.structured), pattern, name);
    }
  });

  it("the documented privileged recipe (install-worker.sh --allow-restart, polkit): the agent restarts exactly the allowed unit", async (t) => {
    const started = performance.now();
    const r = await box!.try(
      `/src/scripts/install-worker.sh --ca /certs/ca.pem --cert /certs/workers/sd1.pem --key /certs/workers/sd1-key.pem --manager wss://127.0.0.1:${wire!.port} --no-mdns ` +
        "--action /certs/actions/restart-service.json --action /certs/actions/stop-service.json --allow-restart dummy",
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    await offering("restart_service", 30_000);
    t.diagnostic(`installed and offering ${Math.round(performance.now() - started)} ms after the installer started`);
    // The system user the installer created, of the dynamic user's name: still not root.
    const who = await runAction("whoami");
    assert.equal(who.stdout.tail.trim(), (await box!.sh("id -u mcp-fleet-worker")).trim());
    assert.notEqual(who.stdout.tail.trim(), "0");

    const before = await dummy("InvocationID");
    const restarted = await runAction("restart_service", { unit: "dummy.service" });
    assert.equal(restarted.status, "succeeded", JSON.stringify(restarted));
    assert.notEqual(await dummy("InvocationID"), before, "dummy.service started again");
    assert.equal(await dummy("ActiveState"), "active");

    // The same user, the same unit, another verb: polkit says no, and dummy.service runs on untouched.
    const now = await dummy("InvocationID");
    const stopped = await runAction("stop_service", { unit: "dummy.service" });
    assert.equal(stopped.status, "failed", JSON.stringify(stopped));
    assert.match(stopped.stderr.tail, /Access denied|authentication required|not authorized/i);
    assert.equal(await dummy("InvocationID"), now);
    assert.equal(await dummy("ActiveState"), "active");
  });

  /** The file system as it was before the install, no unit, no dynamic user, no system user. */
  const assertUninstalled = async () => {
    const r = await box!.try("/src/scripts/install-worker.sh --uninstall");
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const now = new Set((await box!.sh(SNAPSHOT)).split("\n"));
    const was = new Set(untouched.split("\n"));
    const left = [...now].filter((p) => !was.has(p));
    const lost = [...was].filter((p) => !now.has(p));
    assert.deepEqual({ left, lost }, { left: [], lost: [] }, "the file system is as it was before the install");
    // list-unit-files exits 1 when nothing matches: only the output counts.
    const units = await box!.try(`systemctl list-units --all --no-legend 'mcp-fleet*'; systemctl list-unit-files --no-legend 'mcp-fleet*'`);
    assert.equal(units.stdout.trim(), "", "systemd knows no mcp-fleet unit");
    assert.equal((await box!.sh("ls /run/systemd/dynamic-uid 2>/dev/null | grep mcp-fleet || true")).trim(), "", "no dynamic user left allocated");
    assert.notEqual((await box!.try("getent passwd mcp-fleet-worker")).code, 0, "nor the system user --allow-restart created");
  };

  it("--uninstall leaves nothing behind: no files, no unit, no user", () => assertUninstalled());

  // The host is bare again (shown just above). From here on it is given nothing but a join string.
  let joinedId = "";
  const STATE = "/var/lib/private/mcp-fleet";
  const joinedTransition = (to: string, from: number, timeoutMs: number) =>
    untilLine(enrolling!.manager, (l) => l.event === "transition" && l.worker === joinedId && l.to === to, timeoutMs, `${joinedId} ${to}`, from, journal);

  it("a bare host given only a join string through the installer joins by itself: healthy within 15 s of the unit starting, its key in its state directory alone", async (t) => {
    const dir = await tempDir("systemd-enrolling");
    const certs = await makeCerts(dir.path, [], "joined");
    enrolling = {
      certs,
      cleanup: dir.cleanup,
      manager: await McpManager.start(certs, ["--ca-key", join(certs.dir, "ca-key.pem"), "--tokens", join(certs.dir, "tokens.json"), "--cert-lifetime", "1h"]),
    };
    const made = await runCli(["token", "create", "--dir", certs.dir, "--ttl", "10m", "--uses", "1"]);
    assert.equal(made.code, 0, made.stderr);
    const joinString = made.stdout.trim();
    assert.match(joinString, /^mcpf1:[a-z0-9]{6}\.[a-z0-9]{24}:sha256:[0-9a-f]{64}$/);
    // The id a joining worker asks for: its host name's first label (nspawn names an ephemeral machine uniquely).
    joinedId = (await box!.sh("hostname")).trim().split(".")[0]!.toLowerCase();

    const from = enrolling.manager.lines.length;
    const r = await box!.try(`/src/scripts/install-worker.sh --join '${joinString}' --manager ${enrolling.manager.url} --no-mdns`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    // The installer's last step is `systemctl restart`, which returns once the agent runs.
    const started = performance.now();
    const joined = await untilLine(enrolling.manager, (l) => l.msg === "host joined" && l.id === joinedId, 30_000, "host joined", from, journal);
    await joinedTransition("healthy", from, 30_000);
    const tookMs = Math.round(performance.now() - started);
    t.diagnostic(`joined (serial ${String(joined.serial)}) and healthy ${tookMs} ms after the unit started`);
    assert.ok(tookMs <= 15_000, `healthy ${tookMs} ms after the unit started`);

    // The enrolled identity: in the state directory, the key 0600 and the service's own (dynamic) user's.
    const uid = (await box!.sh(`stat -c %u /proc/${await mainPid()}`)).trim();
    assert.ok(Number(uid) >= 61184 && Number(uid) <= 65519, `a dynamic uid: ${uid}`);
    assert.equal((await box!.sh(`stat -c '%a %u' ${STATE}`)).trim(), `700 ${uid}`);
    assert.equal((await box!.sh(`stat -c '%a %u' ${STATE}/worker-key.pem`)).trim(), `600 ${uid}`);
    assert.equal((await box!.sh(`readlink /var/lib/mcp-fleet`)).trim(), "private/mcp-fleet", "systemd's link to the private state directory");
    assert.equal(await box!.sh(`cat ${STATE}/ca.pem`), readFileSync(certs.ca, "utf8"), "the CA it trusts is the pinned fleet CA");
    const check = await box!.try(`/usr/bin/node /opt/mcp-fleet/dist/cli/main.js certs check --ca ${STATE}/ca.pem --cert ${STATE}/worker.pem --key ${STATE}/worker-key.pem`);
    assert.equal(check.code, 0, `the certificate is the key's, signed by the CA: ${check.stdout}${check.stderr}`);
    assert.match(check.stdout, new RegExp(joinedId));

    // The private key exists nowhere else: not elsewhere on the host, not in any of the manager's files.
    const keyLine = (await box!.sh(`sed -n 2p ${STATE}/worker-key.pem`)).trim();
    assert.ok(keyLine.length >= 40, "a line of the key's base64");
    const holders = (await box!.try(`grep -rlF -e '${keyLine}' /etc /opt /root /home /srv /tmp /var /run 2>/dev/null`)).stdout.trim().split("\n");
    assert.deepEqual(holders, [`${STATE}/worker-key.pem`]);
    const managerFiles = (readdirSync(certs.dir, { recursive: true }) as string[]).map((f) => join(certs.dir, f)).filter((f) => statSync(f).isFile());
    assert.ok(managerFiles.some((f) => f.endsWith("tokens.json")), `the manager's files: ${managerFiles.join(", ")}`);
    assert.deepEqual(managerFiles.filter((f) => readFileSync(f, "utf8").includes(keyLine)), [], "no manager file holds the worker's key");
    assert.deepEqual((await box!.sh("ls /etc/mcp-fleet/credentials")).trim().split("\n"), ["join"], "no identity files were given");
  });

  it("a restart reconnects with the stored identity, without the token (used up by the join)", async () => {
    assert.ok(joinedId, "the host joined");
    const tokens = await runCli(["token", "list", "--dir", enrolling!.certs.dir, "--json"]);
    assert.equal(tokens.code, 0, tokens.stderr);
    const [token] = JSON.parse(tokens.stdout) as Array<{ status: string; used: number; uses: number }>;
    assert.deepEqual({ status: token?.status, used: token?.used, uses: token?.uses }, { status: "exhausted", used: 1, uses: 1 });
    const key = await box!.sh(`cat ${STATE}/worker-key.pem`);
    const pid = await mainPid();

    const from = enrolling!.manager.lines.length;
    await box!.sh(`systemctl restart ${UNIT}`);
    await joinedTransition("offline", from, 10_000);
    await joinedTransition("healthy", from, 30_000);
    assert.notEqual(await mainPid(), pid, "a new agent process");
    const asked = enrolling!.manager.lines.slice(from).filter((l) => l.msg === "host joined" || l.msg === "join refused");
    assert.deepEqual(asked, [], "it did not ask to join again");
    assert.equal(await box!.sh(`cat ${STATE}/worker-key.pem`), key, "the same key");
    assert.equal(await show("NRestarts"), "0", "no restart loop");
  });

  it("--uninstall of a joined host removes its enrolled identity too: nothing left behind", () => assertUninstalled());
});
