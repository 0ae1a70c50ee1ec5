import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { ManagerProc, tempDir, useCerts } from "../helpers/fleet.js";
import { Proc } from "../helpers/processes.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const UNIT = join(REPO, "systemd", "mcp-fleet-worker.service");
const INSTALL = join(REPO, "scripts", "install-worker.sh");
const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
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
    assert.match(readFileSync(join(root, "etc/mcp-fleet/worker.env"), "utf8"), /^MCP_FLEET_LABELS=role=db,zone=a$/m);
    const unit = readFileSync(join(root, "etc/systemd/system/mcp-fleet-worker.service"), "utf8");
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} /opt/mcp-fleet/dist/cli/main\\.js worker$`, "m"));
    assert.ok(existsSync(join(root, "opt/mcp-fleet/node_modules/ws")), "production dependencies");
    assert.ok(!existsSync(join(root, "opt/mcp-fleet/node_modules/typescript")), "no development dependencies");
    if (hasAnalyze) {
      const v = spawnSync("systemd-analyze", ["verify", join(root, "etc/systemd/system/mcp-fleet-worker.service")], { encoding: "utf8" });
      assert.equal(v.status, 0, v.stderr);
    }
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
