import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BridgeClient } from "../helpers/bridge-client.js";
import { useCerts } from "../helpers/fleet.js";
import { personCert } from "../helpers/mcp-http.js";
import { labUnavailable, NetLab } from "../helpers/netlab.js";
import { runCli, type Proc } from "../helpers/processes.js";

const unavailable = labUnavailable();
if (unavailable) console.log(`# skipping the namespace lab: ${unavailable}`);

/** mDNS is real only on the namespace LAN (docs/testing.md): the bridge given no --manager finds the daemon there. */
describe("mcp-fleet connect without --manager: the daemon found on mDNS", { skip: unavailable ?? false }, () => {
  const fx = useCerts("bridge-lab", ["l1"], { before, after });
  let lab: NetLab;
  let manager: Proc;
  let bridge: BridgeClient | undefined;

  before(async () => {
    lab = NetLab.create(["bmgr", "bcli", "bw1"]);
    const issued = await runCli(["certs", "issue", "--role", "operator", "alice", "--dir", fx.dir]);
    assert.equal(issued.code, 0, issued.stderr);
    const c = fx.certs;
    manager = lab.run("bmgr", "manager", ["manager", "--daemon", "--ca", c.ca, "--cert", c.managerCert, "--key", c.managerKey, "--state", join(fx.dir, "state.json"), "--pressure-percent", "0"]);
    await manager.waitFor((l) => l.msg === "manager listening", 15_000, "manager listening");
    const w = c.worker("l1");
    lab.run("bw1", "worker l1", ["worker", "--ca", c.ca, "--cert", w.cert, "--key", w.key]);
    await manager.waitFor((l) => l.event === "transition" && l.worker === "l1" && l.to === "healthy", 20_000, "l1 healthy");
  });
  after(async () => {
    await bridge?.close().catch(() => {});
    lab?.destroySync();
  });

  it("the bridge finds the manager of its CA's fleet by mDNS and uses https://<address>:7443/mcp", async () => {
    const alice = personCert(fx.dir, "operator", "alice");
    bridge = await BridgeClient.start(["--ca", fx.certs.ca, "--cert", alice.cert, "--key", alice.key], "lab-client", undefined, lab.launcher("bcli"));
    const { workers } = await bridge.ok<{ workers: Array<{ id: string; state: string }> }>("list_workers");
    assert.deepEqual(workers.map((x) => [x.id, x.state]), [["l1", "healthy"]]);
    const connected = bridge.lines.find((l) => l.msg === "bridge connected to the manager");
    assert.equal(connected?.manager, `https://${lab.host("bmgr").address}:7443/mcp`);
  });
});
