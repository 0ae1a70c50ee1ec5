import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { makeCerts, tempDir } from "../helpers/fleet.js";
import { HttpMcp } from "../helpers/mcp-http.js";
import { Proc } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = join(REPO, "systemd", "mcp-fleet-manager.service");
const INSTALL = join(REPO, "scripts", "install-manager.sh");
const INSTALL_WORKER = join(REPO, "scripts", "install-worker.sh");
const FLEET = "etc/mcp-fleet/fleet";
const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
const isRoot = process.getuid?.() === 0;
if (!hasAnalyze) console.log("# skipping the manager unit checks: systemd-analyze is not installed (CI installs it)");

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

const exposure = (unit: string) => {
  const out = execFileSync("systemd-analyze", ["security", "--offline=true", unit], { encoding: "utf8" });
  return Number(/Overall exposure level for mcp-fleet-manager\.service: ([\d.]+)/.exec(out)?.[1]);
};

describe("manager systemd unit", { skip: hasAnalyze ? false : "systemd-analyze is not installed" }, () => {
  it("systemd-analyze verify is clean", () => {
    const r = spawnSync("systemd-analyze", ["verify", UNIT], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", "no warnings");
  });

  it("systemd-analyze security --offline rates its exposure 2.5 or lower; it restarts always and gets its keys by LoadCredential", (t) => {
    const level = exposure(UNIT);
    t.diagnostic(`exposure ${level}`);
    assert.ok(level <= 2.5, `exposure ${level}`);
    const text = readFileSync(UNIT, "utf8");
    assert.match(text, /^ExecStart=\/usr\/bin\/node \/opt\/mcp-fleet\/dist\/cli\/main\.js manager --daemon$/m);
    assert.match(text, /^Restart=always$/m, "a kill -9 is restarted too");
    assert.match(text, /^LoadCredential=ca-key\.pem:\/etc\/mcp-fleet\/fleet\/ca-key\.pem$/m);
    assert.match(text, /^LoadCredential=manager-key\.pem:\/etc\/mcp-fleet\/fleet\/manager-key\.pem$/m);
    assert.match(text, /^Environment=MCP_FLEET_KEY=%d\/manager-key\.pem MCP_FLEET_CA_KEY=%d\/ca-key\.pem$/m);
    assert.match(text, /^ReadWritePaths=\/etc\/mcp-fleet\/fleet$/m);
  });
});

describe("scripts/install-manager.sh (into a temporary root: systemd is not PID 1 here)", () => {
  let root: string;
  let work: string;
  const cleanups: Array<() => Promise<void>> = [];
  before(async () => {
    const r = await tempDir("manager-root");
    const w = await tempDir("manager-work");
    cleanups.push(r.cleanup, w.cleanup);
    root = r.path;
    work = w.path;
  });
  after(() => Promise.all(cleanups.map((c) => c())));

  const run = (script: string, into: string, ...args: string[]) => spawnSync("bash", [script, "--root", into, ...args], { encoding: "utf8" });
  const mode = (into: string, p: string) => (statSync(join(into, p)).mode & 0o777).toString(8);
  const installedCli = (into: string, ...args: string[]) =>
    spawnSync(process.execPath, [join(into, "opt/mcp-fleet/dist/cli/main.js"), ...args], { encoding: "utf8" });

  it("creates a fleet (certs init) with the private keys 0600, and installs the manager, its unit, settings and CLI", () => {
    const r = run(INSTALL, root, "--fleet", "lab", "--port", "7555", "--no-mdns", "--allowed-origins", "https://console.example");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /not creating the system user mcp-fleet-manager/);
    assert.match(r.stdout, /systemd is not managing this root/);
    assert.equal(mode(root, FLEET), "750");
    for (const f of ["ca-key.pem", "manager-key.pem"]) assert.equal(mode(root, `${FLEET}/${f}`), "600", f);
    for (const f of ["ca.pem", "manager.pem", "crl.pem", "inventory.json"]) assert.equal(mode(root, `${FLEET}/${f}`), "644", f);
    const check = installedCli(root, "certs", "check", "--role", "manager", "--ca", join(root, FLEET, "ca.pem"), "--cert", join(root, FLEET, "manager.pem"), "--key", join(root, FLEET, "manager-key.pem"));
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /manager "manager" of fleet "lab"/);

    const env = readFileSync(join(root, "etc/mcp-fleet/manager.env"), "utf8");
    for (const line of ['MCP_FLEET_PORT="7555"', 'MCP_FLEET_NO_MDNS="1"', 'MCP_FLEET_ALLOWED_ORIGINS="https://console.example"']) {
      assert.ok(env.split("\n").includes(line), `${line} in manager.env:\n${env}`);
    }
    assert.match(env, /^# MCP_FLEET_METRICS_LISTEN="127\.0\.0\.1:9464"/m, "room for the metrics listener, commented out");
    const unitPath = join(root, "etc/systemd/system/mcp-fleet-manager.service");
    const unit = readFileSync(unitPath, "utf8");
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} /opt/mcp-fleet/dist/cli/main\\.js manager --daemon$`, "m"));
    assert.equal(mode(root, "usr/local/bin/mcp-fleet"), "755");
    assert.match(readFileSync(join(root, "usr/local/bin/mcp-fleet"), "utf8"), /^MCP_FLEET_DIR="\$\{MCP_FLEET_DIR:-\/etc\/mcp-fleet\/fleet\}" exec /m);
    assert.ok(existsSync(join(root, "opt/mcp-fleet/node_modules/@modelcontextprotocol/sdk")), "production dependencies");
    assert.ok(!existsSync(join(root, "opt/mcp-fleet/node_modules/typescript")), "no development dependencies");
    if (hasAnalyze) {
      const v = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
      assert.ok(exposure(unitPath) <= 2.5, "the installed unit is rated as the shipped one");
    }
  });

  it("the installed manager serves /mcp from the installed fleet to an operator certificate issued there", async () => {
    const fleet = join(root, FLEET);
    const issued = installedCli(root, "certs", "issue", "--role", "operator", "alice", "--dir", fleet);
    assert.equal(issued.status, 0, issued.stderr);
    // The unit's settings, with the keys read in place rather than handed over by systemd.
    const m = new Proc(
      "installed manager",
      ["manager", "--daemon", "--host", "127.0.0.1", "--port", "0", "--no-mdns", "--state", join(work, "state.json")],
      { MCP_FLEET_CA: join(fleet, "ca.pem"), MCP_FLEET_CERT: join(fleet, "manager.pem"), MCP_FLEET_KEY: join(fleet, "manager-key.pem"), MCP_FLEET_CA_KEY: join(fleet, "ca-key.pem") },
      [],
      [process.execPath, join(root, "opt/mcp-fleet/dist/cli/main.js")],
    );
    try {
      const line = await m.waitFor((l) => l.msg === "serving MCP over HTTPS to operator and viewer certificates", 15_000, "serving");
      assert.ok(!m.lines.some((l) => l.msg?.toString().startsWith("enrollment disabled")), "the CA key is usable");
      const port = Number(new URL(String(line.url)).port);
      const c = await HttpMcp.connect(port, join(fleet, "ca.pem"), { cert: join(fleet, "operators/alice.pem"), key: join(fleet, "operators/alice-key.pem") });
      assert.deepEqual((await c.ok<{ workers: unknown[] }>("list_workers")).workers, []);
      await c.close();
    } finally {
      await m.stop();
    }
    assert.equal((await m.exited).code, 0);
  });

  let installed = new Map<string, string>();
  it("is idempotent: a second run keeps the fleet and its settings, and leaves the same files", () => {
    const before = tree(root);
    installed = before;
    const r = run(INSTALL, root);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kept the fleet installed in \/etc\/mcp-fleet\/fleet/);
    assert.deepEqual(tree(root), before);
  });

  it("refuses bad settings, another fleet, or a fleet directory whose manager files do not belong to its CA, before changing anything", async () => {
    const other = await makeCerts(join(work, "other"), [], "other");
    const mixed = join(work, "mixed");
    execFileSync("cp", ["-R", other.dir, mixed]);
    writeFileSync(join(mixed, "manager-key.pem"), readFileSync(join(root, FLEET, "manager-key.pem")));
    for (const [args, err] of [
      [["--port", "70000"], /a port is 1 to 65535/],
      [["--fleet", "a", "--fleet-dir", other.dir], /give one of them/],
      [["--fleet", "lab2"], /already holds another fleet/],
      [["--fleet-dir", other.dir], /another fleet is installed/],
      [["--fleet-dir", join(work, "missing")], /cannot read/],
      [["--fleet-dir", mixed], /are not a manager identity/],
      [["--host", "a\nMCP_FLEET_CA_KEY=/tmp/x"], /must be one line/],
      [["--purge"], /--purge goes with --uninstall/],
    ] as const) {
      const r = run(INSTALL, root, ...args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, err);
    }
    assert.deepEqual(tree(root), installed, "nothing changed");
  });

  it("--fleet-dir brings an existing fleet along: a copy, its lock files left behind", async () => {
    const other = await makeCerts(join(work, "existing"), ["w1"], "existing");
    writeFileSync(join(other.dir, "tokens.json.lock"), "");
    const into = join(work, "root2");
    execFileSync("mkdir", [into]);
    const r = run(INSTALL, into, "--fleet-dir", other.dir);
    assert.equal(r.status, 0, r.stderr);
    const copy = tree(join(into, FLEET));
    const original = tree(other.dir);
    original.delete("tokens.json.lock");
    for (const key of ["ca-key.pem", "manager-key.pem"]) original.set(key, original.get(key)!.replace(/^\d+/, "600"));
    assert.deepEqual(copy, original);
    const again = run(INSTALL, into, "--fleet-dir", other.dir);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /kept the fleet installed/);
  });

  it("a worker on the same host: uninstalling either keeps what the other needs", () => {
    const into = join(work, "root2");
    const { cert, key } = { cert: join(work, "existing/workers/w1.pem"), key: join(work, "existing/workers/w1-key.pem") };
    const w = run(INSTALL_WORKER, into, "--ca", join(work, "existing/ca.pem"), "--cert", cert, "--key", key);
    assert.equal(w.status, 0, w.stderr);
    const withBoth = tree(into);

    const m = run(INSTALL, into, "--uninstall", "--purge");
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /kept \/opt\/mcp-fleet: mcp-fleet-worker\.service still runs it/);
    const left = [...tree(into).keys()];
    assert.deepEqual(left, [...withBoth.keys()].filter((p) => !/^(etc\/mcp-fleet\/(fleet\/|manager\.env)|etc\/systemd\/system\/mcp-fleet-manager|usr\/local\/bin\/)/.test(p)));

    const again = run(INSTALL, into, "--fleet-dir", join(work, "existing"));
    assert.equal(again.status, 0, again.stderr);
    const u = run(INSTALL_WORKER, into, "--uninstall");
    assert.equal(u.status, 0, u.stderr);
    assert.ok(existsSync(join(into, "opt/mcp-fleet/dist/cli/main.js")), "the manager's unit still runs the build");
    assert.ok(existsSync(join(into, FLEET, "ca-key.pem")) && existsSync(join(into, "etc/mcp-fleet/manager.env")), "nor its fleet or settings");
    assert.ok(!existsSync(join(into, "etc/mcp-fleet/credentials")) && !existsSync(join(into, "etc/mcp-fleet/worker.env")), "the worker's files are gone");
    const last = run(INSTALL, into, "--uninstall", "--purge");
    assert.equal(last.status, 0, last.stderr);
    assert.deepEqual([...tree(into).keys()], []);
  });

  it("--uninstall keeps the fleet (made root's); --uninstall --purge leaves nothing behind", () => {
    const r = run(INSTALL, root, "--uninstall");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /kept the fleet .* in \/etc\/mcp-fleet\/fleet/);
    assert.deepEqual([...tree(root).keys()].filter((p) => !p.startsWith(`${FLEET}/`)), [], "only the fleet is left");
    if (isRoot) assert.equal(statSync(join(root, FLEET)).uid, 0);
    const purge = run(INSTALL, root, "--uninstall", "--purge");
    assert.equal(purge.status, 0, purge.stderr);
    assert.deepEqual([...tree(root).keys()], []);
    assert.ok(!existsSync(join(root, "etc/mcp-fleet")) && !existsSync(join(root, "opt/mcp-fleet")));
  });
});
