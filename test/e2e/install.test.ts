import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { after, before, describe, it } from "node:test";
import { ManagerProc, tempDir, useCerts } from "../helpers/fleet.js";
import { Proc } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = join(REPO, "systemd", "mcp-fleet-worker.service");
const INSTALL = join(REPO, "scripts", "install-worker.sh");
const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log("# skipping the ownership and no-home-directory checks: they need root (CI runs as root)");
/** A uid and gid with no passwd or group entry, as a systemd DynamicUser has on a host without libnss-systemd. */
const NOBODY_KNOWN = 61234;
if (!hasAnalyze) console.log("# skipping the systemd unit checks: systemd-analyze is not installed (CI installs it)");

/** Every file under `dir`, relative, with its mode and a hash of its content. */
function tree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.set(relative(dir, p), `${(st.mode & 0o777).toString(8)} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

describe("systemd unit", { skip: hasAnalyze ? false : "systemd-analyze is not installed" }, () => {
  it("systemd-analyze verify is clean", () => {
    const r = spawnSync("systemd-analyze", ["verify", UNIT], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", "no warnings");
  });

  it("systemd-analyze security --offline rates its exposure 2.5 or lower", (t) => {
    const out = execFileSync("systemd-analyze", ["security", "--offline=true", UNIT], { encoding: "utf8" });
    const level = Number(/Overall exposure level for mcp-fleet-worker\.service: ([\d.]+)/.exec(out)?.[1]);
    t.diagnostic(`exposure ${level}`);
    assert.ok(level <= 2.5, `exposure ${level}`);
    assert.match(readFileSync(UNIT, "utf8"), /^MemoryDenyWriteExecute=no$/m, "V8 needs writable-executable memory");
  });
});

describe("scripts/install-worker.sh (into a temporary root: systemd is not PID 1 here)", () => {
  const fx = useCerts("install", ["inst1"], { before, after });
  let root: string;
  let cleanupRoot = async () => {};
  before(async () => {
    const t = await tempDir("root");
    root = t.path;
    cleanupRoot = t.cleanup;
  });
  after(() => cleanupRoot());

  const install = (...extra: string[]) => {
    const { cert, key } = fx.certs.worker("inst1");
    return spawnSync("bash", [INSTALL, "--root", root, "--ca", fx.certs.ca, "--cert", cert, "--key", key, ...extra], { encoding: "utf8" });
  };

  it("installs the agent, its unit and the certificate bundle with the right modes", () => {
    const r = install("--labels", "role=db,zone=a");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /systemd is not managing this root/);
    const mode = (p: string) => (statSync(join(root, p)).mode & 0o777).toString(8);
    assert.equal(mode("etc/mcp-fleet/credentials"), "700");
    for (const f of ["ca.pem", "worker.pem", "worker-key.pem"]) assert.equal(mode(`etc/mcp-fleet/credentials/${f}`), "600");
    assert.equal(readFileSync(join(root, "etc/mcp-fleet/credentials/worker-key.pem"), "utf8"), readFileSync(fx.certs.worker("inst1").key, "utf8"));
    assert.match(readFileSync(join(root, "etc/mcp-fleet/worker.env"), "utf8"), /^MCP_FLEET_LABELS="role=db,zone=a"$/m);
    const unit = readFileSync(join(root, "etc/systemd/system/mcp-fleet-worker.service"), "utf8");
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} /opt/mcp-fleet/dist/cli/main\\.js worker$`, "m"));
    assert.ok(existsSync(join(root, "opt/mcp-fleet/node_modules/ws")), "production dependencies");
    assert.ok(!existsSync(join(root, "opt/mcp-fleet/node_modules/typescript")), "no development dependencies");
    if (hasAnalyze) {
      const v = spawnSync("systemd-analyze", ["verify", join(root, "etc/systemd/system/mcp-fleet-worker.service")], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
    }
  });

  it("--action, --mcp-servers and --allow-restart install root-owned action files, the servers file and a polkit rule for exactly those units", () => {
    const dir = join(fx.dir, "host-files");
    mkdirSync(dir, { recursive: true });
    const action = { name: "restart_service", description: "Restart a service", argv: ["/usr/bin/systemctl", "restart", "{unit}"], params: { unit: { type: "string", enum: ["nginx.service"] } } };
    writeFileSync(join(dir, "restart-service.json"), JSON.stringify(action));
    writeFileSync(join(dir, "uptime.json"), JSON.stringify({ name: "uptime", description: "Uptime", argv: ["/usr/bin/uptime"], destructive: false }));
    writeFileSync(join(dir, "servers.json"), JSON.stringify({ mcpServers: { files: { command: "/usr/bin/true" } } }));
    const r = install("--action", join(dir, "restart-service.json"), "--action", join(dir, "uptime.json"), "--mcp-servers", join(dir, "servers.json"), "--allow-restart", "nginx", "--allow-restart", "app@1.service");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /not creating the system user mcp-fleet-worker/, "a system user is made on a real host only");
    const st = (p: string) => statSync(join(root, p));
    const mode = (p: string) => (st(p).mode & 0o777).toString(8);
    assert.equal(mode("etc/mcp-fleet/actions.d"), "755");
    for (const f of ["actions.d/restart-service.json", "actions.d/uptime.json", "mcp-servers.json"]) {
      assert.equal(mode(`etc/mcp-fleet/${f}`), "644", f);
      if (isRoot) assert.equal(st(`etc/mcp-fleet/${f}`).uid, 0, `${f} belongs to root`);
    }
    assert.deepEqual(JSON.parse(readFileSync(join(root, "etc/mcp-fleet/actions.d/restart-service.json"), "utf8")), action);

    // The rule as polkit runs it (a JavaScript function given the action and the asking subject).
    const rule = join(root, "etc/polkit-1/rules.d/50-mcp-fleet-worker.rules");
    assert.equal(mode("etc/polkit-1/rules.d/50-mcp-fleet-worker.rules"), "644");
    const Result = { YES: "yes", NO: "no" };
    let decide: (action: unknown, subject: unknown) => unknown = () => assert.fail("no rule added");
    runInNewContext(readFileSync(rule, "utf8"), { polkit: { Result, addRule: (f: typeof decide) => (decide = f) } });
    const ask = (user: string, id: string, unit: string, verb: string) =>
      decide({ id, lookup: (k: string) => ({ unit, verb })[k] }, { user });
    const UNITS = "org.freedesktop.systemd1.manage-units";
    assert.equal(ask("mcp-fleet-worker", UNITS, "nginx.service", "restart"), "yes");
    assert.equal(ask("mcp-fleet-worker", UNITS, "app@1.service", "restart"), "yes");
    assert.equal(ask("mcp-fleet-worker", UNITS, "nginx.service", "stop"), "no");
    assert.equal(ask("mcp-fleet-worker", UNITS, "sshd.service", "restart"), "no");
    assert.equal(ask("mcp-fleet-worker", "org.freedesktop.login1.reboot", "", ""), "no", "nothing else polkit decides");
    assert.equal(ask("alice", UNITS, "nginx.service", "restart"), undefined, "other users are left to the host's own rules");
  });

  it("refuses a bad action file, servers file or unit name before installing anything", () => {
    const dir = join(fx.dir, "bad-files");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "broken.json"), "{ not json");
    writeFileSync(join(dir, "action.txt"), "{}");
    const before = tree(root);
    for (const [args, err] of [
      [["--action", join(dir, "broken.json")], /broken\.json is not valid JSON/],
      [["--action", join(dir, "action.txt")], /must end in \.json/],
      [["--action", join(dir, "missing.json")], /cannot read/],
      [["--mcp-servers", join(dir, "broken.json")], /not a readable JSON file/],
      [["--allow-restart", 'x"]; polkit.Result.YES; //'], /a unit name is/],
    ] as const) {
      const r = install(...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, err);
    }
    assert.deepEqual(tree(root), before, "nothing changed");
  });

  it("the installed agent, with the installed credentials, joins a manager", async () => {
    const manager = await ManagerProc.start(fx.certs);
    const creds = join(root, "etc/mcp-fleet/credentials");
    const worker = new Proc(
      "installed worker",
      ["worker", "--ca", join(creds, "ca.pem"), "--cert", join(creds, "worker.pem"), "--key", join(creds, "worker-key.pem"), "--manager", manager.url, "--no-mdns"],
      {},
      [],
      [process.execPath, join(root, "opt/mcp-fleet/dist/cli/main.js")],
    );
    await manager.waitForState("inst1", "healthy", 10_000);
    worker.kill("SIGTERM");
    assert.equal((await worker.exited).code, 0);
    await manager.stop();
  });

  it("the agent needs no home directory: HOME unset, a uid with no passwd entry (a DynamicUser without libnss-systemd)", { skip: isRoot ? false : "needs root" }, async (t) => {
    const manager = await ManagerProc.start(fx.certs);
    // Copies the unprivileged uid can read, as LoadCredential= hands the service its own.
    const creds = join(fx.dir, "homeless");
    mkdirSync(creds, { mode: 0o700 });
    const { cert, key } = fx.certs.worker("inst1");
    for (const [from, to] of [[fx.certs.ca, "ca.pem"], [cert, "worker.pem"], [key, "worker-key.pem"]] as const) copyFileSync(from, join(creds, to));
    chmodSync(fx.dir, 0o711);
    for (const f of ["", "ca.pem", "worker.pem", "worker-key.pem"]) chownSync(join(creds, f), NOBODY_KNOWN, NOBODY_KNOWN);
    assert.throws(() => execFileSync("getent", ["passwd", String(NOBODY_KNOWN)], { stdio: "ignore" }), "the uid has no passwd entry");
    const worker = new Proc(
      "homeless worker",
      ["worker", "--ca", join(creds, "ca.pem"), "--cert", join(creds, "worker.pem"), "--key", join(creds, "worker-key.pem"), "--manager", manager.url, "--no-mdns"],
      {},
      ["setpriv", `--reuid=${NOBODY_KNOWN}`, `--regid=${NOBODY_KNOWN}`, "--clear-groups", "env", "-u", "HOME", "-u", "XDG_DATA_HOME", "--"],
    );
    const outcome = await Promise.race([manager.waitForState("inst1", "healthy", 10_000).then(() => "healthy"), worker.exited.then((e) => `exited ${e.code}`)]);
    assert.equal(outcome, "healthy", worker.lines.map((l) => String(l.raw ?? l.msg)).join("\n"));
    worker.kill("SIGTERM");
    assert.equal((await worker.exited).code, 0);
    await manager.stop();
    t.diagnostic("the manager, by contrast, needs --state without a home directory:");
    const m = new Proc("homeless manager", ["manager", "--ca", fx.certs.ca, "--cert", fx.certs.managerCert, "--key", fx.certs.managerKey, "--no-mdns"], {}, [
      "env", "-u", "HOME", "-u", "XDG_DATA_HOME", "setpriv", `--reuid=${NOBODY_KNOWN}`, `--regid=${NOBODY_KNOWN}`, "--clear-groups", "--",
    ]);
    assert.equal((await m.exited).code, 2);
    assert.match(m.lines.map((l) => String(l.raw)).join("\n"), /no home directory .*: pass --state/);
  });

  it("installs files owned by root, whoever owns the checkout, and quotes the settings it writes", { skip: isRoot ? false : "needs root" }, async () => {
    // A checkout owned by an ordinary user: its owner must not own (and so be able to change) the installed agent.
    const checkout = join(fx.dir, "checkout");
    for (const part of ["dist", "scripts", "systemd", "package.json", "package-lock.json", "README.md", "node_modules"]) {
      cpSync(join(REPO, part), join(checkout, part), { recursive: true, verbatimSymlinks: true });
    }
    execFileSync("chown", ["-R", `${NOBODY_KNOWN}:${NOBODY_KNOWN}`, checkout]);
    const other = await tempDir("root-owned");
    try {
      const labels = `role=db,note=it's "quoted" \\ $HOME \`x\` with  spaces`;
      const manager = "wss://127.0.0.1:7443";
      const { cert, key } = fx.certs.worker("inst1");
      const r = spawnSync("bash", [join(checkout, "scripts/install-worker.sh"), "--root", other.path, "--ca", fx.certs.ca, "--cert", cert, "--key", key, "--manager", manager, "--labels", labels], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const foreign: string[] = [];
      const walk = (d: string) => {
        for (const name of readdirSync(d)) {
          const p = join(d, name);
          const st = lstatSync(p);
          if (st.uid !== 0 || st.gid !== 0) foreign.push(`${relative(other.path, p)} ${st.uid}:${st.gid}`);
          if (st.isDirectory()) walk(p);
        }
      };
      walk(other.path);
      assert.deepEqual(foreign.slice(0, 5), [], `${foreign.length} installed paths not owned by root:root`);
      // Read back as a shell reads it (systemd's EnvironmentFile= follows the same quoting rules).
      const env = join(other.path, "etc/mcp-fleet/worker.env");
      const read = execFileSync("bash", ["-c", 'set -a; . "$1"; printf "%s\\n%s" "$MCP_FLEET_MANAGER" "$MCP_FLEET_LABELS"', "_", env], { encoding: "utf8", env: {} });
      assert.equal(read, `${manager}\n${labels}`, readFileSync(env, "utf8"));
      const broken = spawnSync("bash", [INSTALL, "--root", other.path, "--ca", fx.certs.ca, "--cert", cert, "--key", key, "--labels", "a=b\nMCP_FLEET_CA=/tmp/evil.pem"], { encoding: "utf8" });
      assert.equal(broken.status, 2);
      assert.match(broken.stderr, /must be one line/);
    } finally {
      await other.cleanup();
    }
  });

  it("is idempotent: a second run leaves the same files", () => {
    const before = tree(root);
    const r = install();
    assert.equal(r.status, 0, r.stderr);
    const afterRun = tree(root);
    assert.deepEqual([...afterRun.keys()].sort(), [...before.keys()].sort());
    for (const [path, sig] of before) assert.equal(afterRun.get(path), sig, path);
  });

  it("refuses certificate files that do not belong together, before installing anything", () => {
    const { cert } = fx.certs.worker("inst1");
    const r = spawnSync("bash", [INSTALL, "--root", root, "--ca", fx.certs.ca, "--cert", cert, "--key", fx.certs.managerKey], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /do not belong together/);
  });

  it("--uninstall leaves nothing behind", () => {
    const r = spawnSync("bash", [INSTALL, "--root", root, "--uninstall"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([...tree(root).keys()], []);
    assert.ok(!existsSync(join(root, "opt/mcp-fleet")) && !existsSync(join(root, "etc/mcp-fleet")));
  });
});
