import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import type { RunResult } from "../../src/protocol/actions.js";
import { useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { Container, SYSTEMD_ROOT, systemdUnavailable } from "../helpers/nspawn.js";
import type { LogLine } from "../helpers/processes.js";

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
  // Registered before useCerts' own clean-up, so the container is gone before its certificate directory is.
  after(async () => {
    await box?.poweroff();
    manager?.kill();
    await wire?.close();
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

  it("--uninstall leaves nothing behind: no files, no unit, no user", async () => {
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
  });
});
