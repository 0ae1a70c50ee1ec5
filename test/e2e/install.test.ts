import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { runInNewContext } from "node:vm";
import { after, before, describe, it } from "node:test";
import { caPin } from "../../src/pki/pin.js";
import { formatJoinString } from "../../src/protocol/join.js";
import { ManagerProc, tempDir, useCerts } from "../helpers/fleet.js";
import { Proc } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = join(REPO, "systemd", "mcp-fleet-worker.service");
const INSTALL = join(REPO, "scripts", "install-worker.sh");
const JOIN_DROP_IN = join(REPO, "systemd", "mcp-fleet-worker-join.conf");
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
    const m = new Proc("homeless manager", ["manager", "--ca", fx.certs.ca, "--cert", fx.certs.managerCert, "--key", fx.certs.managerKey, "--no-mdns", "--metrics-listen", "off"], {}, [
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

  /** The root after a three-files install, to show that a host switched back from joining is exactly that again. */
  let threeFiles = new Map<string, string>();
  it("is idempotent: a second run leaves the same files", () => {
    const before = tree(root);
    threeFiles = before;
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

  const joinString = () => formatJoinString({ token: { id: "inst01", secret: "abcdefghijklmnopqrstuvwx" }, pin: caPin(readFileSync(fx.certs.ca)) });
  const installJoin = (...args: string[]) => spawnSync("bash", [INSTALL, "--root", root, ...args], { encoding: "utf8" });
  /** What systemd makes of StateDirectory=mcp-fleet under DynamicUser, with an identity the agent enrolled. */
  const fakeEnrolledState = () => {
    mkdirSync(join(root, "var/lib/private/mcp-fleet"), { recursive: true, mode: 0o700 });
    for (const f of ["ca.pem", "worker.pem", "worker-key.pem"]) writeFileSync(join(root, "var/lib/private/mcp-fleet", f), `${f}\n`, { mode: 0o600 });
    if (!existsSync(join(root, "var/lib/mcp-fleet"))) symlinkSync("private/mcp-fleet", join(root, "var/lib/mcp-fleet"));
  };

  it("--join with --cert, or a malformed join string, is refused with the agent's own message, before installing anything", () => {
    const before = tree(root);
    const { cert } = fx.certs.worker("inst1");
    const both = installJoin("--join", joinString(), "--cert", cert);
    assert.equal(both.status, 2, both.stderr);
    assert.match(both.stderr, /--join replaces --ca, --cert and --key/);
    for (const bad of ["mcpf1:inst01.short:sha256:abc", joinString().replace("mcpf1", "mcpf2"), `${joinString()}\nMCP_FLEET_CA=/tmp/evil.pem`]) {
      const r = installJoin("--join", bad);
      assert.equal(r.status, 2, `${bad}: ${r.stdout}${r.stderr}`);
      // parseJoinString's message, word for word, and never the secret.
      assert.match(r.stderr, /--join: a join string looks like mcpf1:<6 of a-z0-9>\.<24 of a-z0-9>:sha256:<64 hex>/);
      assert.doesNotMatch(r.stderr, /abcdefghijklmnopqrstuvwx/);
    }
    assert.deepEqual(tree(root), before, "nothing changed");
  });

  it("--join: the string alone, root-only, and a drop-in that hands it to the agent with a state directory; the three files are gone", () => {
    const r = installJoin("--join", `  ${joinString()}  `, "--manager", "wss://127.0.0.1:7443", "--no-mdns");
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /abcdefghijklmnopqrstuvwx/, "the secret is never printed");
    const mode = (p: string) => (statSync(join(root, p)).mode & 0o777).toString(8);
    assert.deepEqual(readdirSync(join(root, "etc/mcp-fleet/credentials")), ["join"]);
    assert.equal(mode("etc/mcp-fleet/credentials"), "700");
    assert.equal(mode("etc/mcp-fleet/credentials/join"), "600");
    if (isRoot) assert.equal(statSync(join(root, "etc/mcp-fleet/credentials/join")).uid, 0);
    assert.equal(readFileSync(join(root, "etc/mcp-fleet/credentials/join"), "utf8"), `${joinString()}\n`, "blanks from copy-paste trimmed");

    // The unit stays the three-files unit; the drop-in swaps the credentials and adds the state directory.
    const unitPath = "etc/systemd/system/mcp-fleet-worker.service";
    assert.equal(tree(root).get(unitPath), threeFiles.get(unitPath), "the unit is the three-files unit, unchanged");
    const dropIn = readFileSync(join(root, "etc/systemd/system/mcp-fleet-worker.service.d/join.conf"), "utf8");
    assert.equal(dropIn, readFileSync(JOIN_DROP_IN, "utf8"));
    assert.equal(mode("etc/systemd/system/mcp-fleet-worker.service.d/join.conf"), "644");
    const settings = dropIn.split("\n").filter((l) => /^[A-Z]/.test(l));
    assert.deepEqual(settings, [
      "LoadCredential=",
      "LoadCredential=join:/etc/mcp-fleet/credentials/join",
      "Environment=",
      "Environment=MCP_FLEET_JOIN_FILE=%d/join MCP_FLEET_STATE_DIR=%S/mcp-fleet",
      "StateDirectory=mcp-fleet",
      "StateDirectoryMode=0700",
    ]);
    assert.match(readFileSync(join(root, "etc/mcp-fleet/worker.env"), "utf8"), /^MCP_FLEET_MANAGER="wss:\/\/127\.0\.0\.1:7443"$/m);
    if (hasAnalyze) {
      // verify and security read the drop-in beside the unit, as systemd does.
      const unit = join(root, "etc/systemd/system/mcp-fleet-worker.service");
      const v = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
      assert.doesNotMatch(v.stderr, /join\.conf/, "no warning about the drop-in");
      const out = execFileSync("systemd-analyze", ["security", "--offline=true", unit], { encoding: "utf8" });
      const level = Number(/Overall exposure level for mcp-fleet-worker\.service: ([\d.]+)/.exec(out)?.[1]);
      assert.ok(level <= 2.5, `exposure ${level} with the join drop-in`);
    }

    // Once the agent enrolled, running the installer again (the string from stdin this time, out of the process
    // list) keeps its identity and says so.
    fakeEnrolledState();
    const again = spawnSync("bash", [INSTALL, "--root", root, "--join", "-"], { encoding: "utf8", input: `${joinString()}\n` });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already holds an enrolled identity in \/var\/lib\/mcp-fleet/);
    assert.ok(existsSync(join(root, "var/lib/private/mcp-fleet/worker-key.pem")), "the enrolled key is kept");
    assert.equal(readFileSync(join(root, "etc/mcp-fleet/credentials/join"), "utf8"), `${joinString()}\n`);
  });

  it("back to the three files: exactly the three-files install again, the join string, drop-in and enrolled identity removed", () => {
    const r = install();
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!existsSync(join(root, "var/lib/private/mcp-fleet")) && !existsSync(join(root, "var/lib/mcp-fleet")), "no enrolled identity left");
    assert.ok(!existsSync(join(root, "etc/systemd/system/mcp-fleet-worker.service.d")), "no drop-in directory left");
    // --join wrote its own settings (--manager); the three-files run kept them, so only worker.env may differ.
    const now = tree(root);
    now.delete("etc/mcp-fleet/worker.env");
    const was = new Map(threeFiles);
    was.delete("etc/mcp-fleet/worker.env");
    assert.deepEqual(now, was);
  });

  it("--uninstall leaves nothing behind", () => {
    fakeEnrolledState();
    const r = spawnSync("bash", [INSTALL, "--root", root, "--uninstall"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([...tree(root).keys()], []);
    assert.ok(!existsSync(join(root, "opt/mcp-fleet")) && !existsSync(join(root, "etc/mcp-fleet")));
    assert.ok(!existsSync(join(root, "var/lib/private/mcp-fleet")) && !lstatExists(join(root, "var/lib/mcp-fleet")), "the state directory is removed");
  });
});

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
