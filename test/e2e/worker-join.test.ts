import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { caPin } from "../../src/pki/pin.js";
import { parseJoinString } from "../../src/protocol/join.js";
import { ManagerProc, makeCerts, tempDir, type CertSet } from "../helpers/fleet.js";
import { killAll, Proc, runCli } from "../helpers/processes.js";

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

/**
 * A bare host joins by itself: a real manager with its CA key, a join string from `mcp-fleet token create`, and a
 * worker started with nothing but that string, the manager's address and an empty state dir.
 */
describe("a worker joins the fleet with a join string", () => {
  let certs: CertSet;
  let manager: ManagerProc;
  let root = "";
  let cleanup: () => Promise<void> = async () => {};

  before(async () => {
    const tmp = await tempDir("worker-join");
    cleanup = tmp.cleanup;
    root = tmp.path;
    certs = await makeCerts(join(root, "certs"), []);
    manager = await ManagerProc.start(certs);
  });
  after(async () => {
    killAll();
    await cleanup();
  });

  const createToken = async (args: string[]) => {
    const made = await runCli(["token", "create", "--dir", certs.dir, ...args]);
    assert.equal(made.code, 0, made.stderr);
    return made.stdout.trim();
  };
  const joiningWorker = (name: string, args: string[]) =>
    new Proc(`worker ${name}`, ["worker", "--manager", manager.url, "--no-mdns", "--state-dir", join(root, `state-${name}`), ...args]);

  it("joins with an auto-approved token, is healthy, and keeps its key only in its state dir; restarted without --join it reconnects", async () => {
    const joinText = await createToken(["--approve", "auto"]);
    const stateDir = join(root, "state-joiner1");
    const w = joiningWorker("joiner1", ["--join", joinText, "--worker-id", "joiner1"]);
    await w.waitFor((l) => l.msg === "joined the fleet", 20_000, "joined");
    await manager.waitForState("joiner1", "healthy", 20_000);
    const hostJoined = manager.lines.find((l) => l.msg === "host joined");
    assert.equal(hostJoined?.id, "joiner1");

    const key = readFileSync(join(stateDir, "worker-key.pem"), "utf8");
    assert.equal(statSync(join(stateDir, "worker-key.pem")).mode & 0o777, 0o600);
    assert.equal(caPin(readFileSync(join(stateDir, "ca.pem"))), caPin(readFileSync(certs.ca)));
    const copies = [...filesUnder(root)].filter((f) => readFileSync(f, "utf8").includes(key.trim()));
    assert.deepEqual(copies, [join(stateDir, "worker-key.pem")], "the private key is nowhere else");
    const parsed = parseJoinString(joinText);
    assert.ok(parsed.ok && parsed.join.token);
    const secret = parsed.join.token.secret;
    assert.ok(!w.lines.some((l) => JSON.stringify(l).includes(secret)), "the token's secret is not logged");

    const from = manager.lines.length;
    w.kill("SIGTERM");
    assert.equal((await w.exited).code, 0);
    const again = joiningWorker("joiner1", []);
    const connected = await again.waitFor((l) => l.msg === "connected to manager", 20_000, "reconnected");
    assert.ok(connected);
    await manager.waitForState("joiner1", "healthy", 20_000, from);
    assert.ok(!again.lines.some((l) => l.msg === "joining the fleet"), "the stored identity is used, no second join");
    assert.ok(again.lines.some((l) => l.msg === "worker starting" && l.enrolled === true));
    again.kill("SIGTERM");
    await again.exited;
  });

  it("without a token, waits for an operator; approved with `mcp-fleet token approve`, it joins at once", async () => {
    const pinOnly = `mcpf1:sha256:${caPin(readFileSync(certs.ca))}`;
    const w = joiningWorker("waiter", ["--join", pinOnly, "--worker-id", "waiter"]);
    const waiting = await w.waitFor((l) => /^waiting for an operator to approve join request [a-z0-9]{8}$/.test(String(l.msg)), 20_000, "waiting");
    const approved = await runCli(["token", "approve", String(waiting.requestId), "--dir", certs.dir]);
    assert.equal(approved.code, 0, approved.stderr);
    await w.waitFor((l) => l.msg === "joined the fleet", 20_000, "joined after approval");
    await manager.waitForState("waiter", "healthy", 20_000);
    assert.equal(w.lines.filter((l) => String(l.msg).startsWith("waiting for an operator")).length, 1, "said once");
    w.kill("SIGTERM");
    assert.equal((await w.exited).code, 0);
  });

  it("stops cleanly on SIGTERM while it waits; an unparsable join string exits 2 without echoing it", async () => {
    const w = joiningWorker("stopper", ["--join", `mcpf1:sha256:${caPin(readFileSync(certs.ca))}`, "--worker-id", "stopper"]);
    await w.waitFor((l) => String(l.msg).startsWith("waiting for an operator"), 20_000, "waiting");
    w.kill("SIGTERM");
    assert.equal((await w.exited).code, 0);
    assert.ok(w.lines.some((l) => l.msg === "worker stopped before it joined the fleet"));

    const secret = "q".repeat(24);
    const bad = await runCli(["worker", "--join", `mcpf1:abc123.${secret}:sha256:nothex`, "--manager", manager.url, "--no-mdns", "--state-dir", join(root, "state-bad")]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--join \(MCP_FLEET_JOIN\): not a join string/);
    assert.ok(!bad.stderr.includes(secret));
  });
});
