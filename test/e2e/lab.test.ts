import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fleetIdFromCa } from "../../src/discovery/txt.js";
import { caPin, pinPrefix } from "../../src/pki/pin.js";
import { makeCerts, tempDir, useCerts } from "../helpers/fleet.js";
import { McpManager } from "../helpers/mcp-client.js";
import { labUnavailable, NetLab } from "../helpers/netlab.js";
import { runCli, sleep, type LogLine, type Proc } from "../helpers/processes.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

const unavailable = labUnavailable();
if (unavailable) console.log(`# skipping the namespace lab: ${unavailable}`);

const ZEROCONF = new URL("../helpers/zeroconf_browse.py", import.meta.url).pathname;

type Listed = {
  workers: Array<{ id: string; state: string; connected: boolean }>;
  unverified: Array<{ id: string; fleet: string; hint: string; addresses: string[] }>;
};
type Zc = {
  events: Array<{ event: string; name: string }>;
  services: Array<{ name: string; server?: string; port?: number; addresses?: string[]; txt?: Record<string, string | null> }>;
};

/** The first log line of `lines` (at or after `from`) that matches, waited for: a log line may still be on its way. */
async function untilLine(who: { lines: LogLine[] }, pred: (l: LogLine) => boolean, timeoutMs: number, what: string, from = 0): Promise<LogLine> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const hit = who.lines.slice(from).find(pred);
    if (hit) return hit;
    if (performance.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; last lines: ${JSON.stringify(who.lines.slice(-5))}`);
    await sleep(50);
  }
}

async function untilStdout(p: Proc, pred: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const hit = p.stdout.find(pred);
    if (hit) return hit;
    if (performance.now() > deadline) throw new Error(`${p.name}: no ${what} within ${timeoutMs} ms; stdout: ${p.stdout.join("\n")}; stderr: ${JSON.stringify(p.lines.slice(-5))}`);
    await sleep(50);
  }
}

/**
 * A LAN on one machine (docs/testing.md): hosts in network namespaces joined by a bridge, so mDNS, link cuts and
 * address changes are real. Root only; CI runs as root.
 */
describe("zero-config rollout on a LAN of network namespaces", { skip: unavailable ?? false }, () => {
  const fx = useCerts("lab", ["w1", "w2", "w3", "gone"], { before, after });
  let lab: NetLab;
  let manager: McpManager;
  let rogue: Proc;
  let fleetId: string;
  let cleanupForeign = async () => {};
  const workers = new Map<string, Proc>();
  const managers: McpManager[] = [];

  /** python-zeroconf browsing from `host` for `seconds`: `seen` follows its events live, `done` is its summary. */
  const browse = (host: string, seconds: number) => {
    const p = lab.run(host, "zeroconf", [ZEROCONF, String(seconds)], {}, ["/usr/bin/python3"]);
    const seen = (name: string, event: string, timeoutMs: number) =>
      untilStdout(p, (l) => { const e = (JSON.parse(l) as { seen?: { name: string; event: string } }).seen; return e?.name === name && e.event === event; }, timeoutMs, `${event} ${name}`);
    const done = p.exited.then(({ code }) => {
      assert.equal(code, 0, JSON.stringify(p.lines));
      return JSON.parse(p.stdout.at(-1) ?? "null") as Zc;
    });
    return { seen, done };
  };
  const zeroconf = (host: string, seconds: number): Promise<Zc> => browse(host, seconds).done;
  const startWorker = (id: string, host = id, extra: string[] = []) => {
    const { cert, key } = fx.certs.worker(id);
    const w = lab.run(host, `worker ${id}`, ["worker", "--ca", fx.certs.ca, "--cert", cert, "--key", key, ...extra]);
    workers.set(id, w);
    return w;
  };

  before(async () => {
    lab = NetLab.create(["mgr", "mgr2", "w1", "w2", "w3", "gone", "rogue", "obs", "busy", "a1", "a2"]);
    fleetId = fleetIdFromCa(readFileSync(fx.certs.ca));
    const revoked = await runCli(["certs", "revoke", "gone", "--dir", fx.dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const foreign = await tempDir("lab-rogue");
    cleanupForeign = foreign.cleanup;
    await makeCerts(foreign.path, [], "test");
    // The rogue is on the LAN first, claiming to be a manager of this very fleet.
    rogue = lab.script("rogue", "rogue", "rogue-manager.ts", [foreign.path, fleetId]);
    await untilStdout(rogue, (l) => l.includes('"announced"'), 15_000, "rogue announcement");
  });
  after(async () => {
    for (const m of managers) m.kill();
    await cleanupForeign();
    lab?.destroySync();
  });

  it("three workers given only their certificate files find the manager by mDNS and are healthy within 15 s", async (t) => {
    manager = await McpManager.start(fx.certs, ["--crl", join(fx.dir, "crl.pem")], { launcher: lab.launcher("mgr"), mdns: true });
    managers.push(manager);
    const started = performance.now();
    for (const id of ["w1", "w2", "w3"]) startWorker(id);
    for (const id of ["w1", "w2", "w3"]) {
      await manager.waitForWorker(id, (w) => w.state === "healthy", 15_000);
      t.diagnostic(`${id} healthy ${Math.round(performance.now() - started)} ms after the workers started`);
    }
    const w2 = await manager.ok<{ worker: { addresses: string[] } }>("get_worker_status", { worker_id: "w2", fresh: false });
    assert.deepEqual(w2.worker.addresses, [lab.host("w2").address]);
    for (const id of ["w1", "w2", "w3"]) {
      const connected = await workers.get(id)!.waitFor((l) => l.msg === "connected to manager", 5000, "connected");
      assert.match(String(connected?.url), new RegExp(`^wss://${lab.host("mgr").address.replace(/\./g, "\\.")}:7443/`), `${id} found the real manager`);
    }
  });

  it("python-zeroconf, browsing the lab, sees the manager and the workers with correct TXT records", async () => {
    const seen = await zeroconf("obs", 4);
    const byAddress = (a: string) => seen.services.filter((s) => s.addresses?.includes(a));
    const m = byAddress(lab.host("mgr").address).find((s) => s.txt?.role === "manager");
    assert.ok(m, JSON.stringify(seen.services));
    assert.deepEqual(m.txt, { txtvers: "1", role: "manager", fleet: fleetId, proto: String(PROTOCOL_VERSION), pin: pinPrefix(caPin(readFileSync(fx.certs.ca))) });
    assert.equal(m.port, 7443);
    assert.equal(m.server, "mgr.local.", "the SRV target carries .local");
    for (const id of ["w1", "w2", "w3"]) {
      const w = byAddress(lab.host(id).address).find((s) => s.txt?.role === "worker");
      assert.ok(w, `${id} announced: ${JSON.stringify(seen.services)}`);
      assert.deepEqual(w.txt, { txtvers: "1", role: "worker", fleet: fleetId, proto: String(PROTOCOL_VERSION), id, ver: "0.1.0" });
      assert.equal(w.server, `${id}.local.`);
      assert.equal(w.name, `mcp-fleet worker ${id}._mcp-fleet._tcp.local.`);
    }
  });

  it("a host running the agent with a certificate the manager refuses shows up as an unverified announcement", async () => {
    startWorker("gone");
    const deadline = performance.now() + 20_000;
    let listed: Listed;
    for (;;) {
      listed = await manager.ok<Listed>("list_workers");
      if (listed.unverified.some((u) => u.id === "gone")) break;
      assert.ok(performance.now() < deadline, `gone never listed as unverified: ${JSON.stringify(listed)}`);
      await sleep(250);
    }
    const u = listed.unverified.find((x) => x.id === "gone")!;
    assert.equal(u.fleet, "this");
    assert.match(u.hint, /announcing but not connected: check its certificate/);
    assert.equal(u.addresses[0], lab.host("gone").address, "the announcement's source address comes first");
    assert.ok(!listed.workers.some((w) => w.id === "gone"), "an announcement never creates a registry entry");
    assert.ok(!listed.unverified.some((x) => ["w1", "w2", "w3"].includes(x.id)), "connected workers are not listed as unverified");
    // Each process logs on its own schedule: the refusal may reach the test after the announcement did.
    await untilLine(manager, (l) => l.reason === "CERT_REVOKED", 10_000, "the manager's CERT_REVOKED refusal at the handshake");
    await untilLine(workers.get("gone")!, (l) => l.kind === "certificate_refused", 10_000, "the worker's certificate_refused");
  });

  it("a cut link turns the worker unhealthy within the detection bound; restored, it is healthy again", async (t) => {
    lab.link("w2", "down");
    let took: number;
    try {
      took = await manager.waitForWorker("w2", (w) => w.state === "unhealthy", 3 * 1000 + 1000);
      t.diagnostic(`link down → unhealthy in ${Math.round(took)} ms`);
    } finally {
      lab.link("w2", "up");
    }
    took = await manager.waitForWorker("w2", (w) => w.state === "healthy", 20_000);
    t.diagnostic(`link up → healthy in ${Math.round(took)} ms`);
  });

  it("the manager restarted on another address: the workers find it again and are healthy within 20 s", async (t) => {
    const watching = browse("obs", 12);
    // The observer must have seen the old manager before it leaves, or its goodbye would mean nothing.
    await watching.seen("mcp-fleet manager on mgr._mcp-fleet._tcp.local.", "Added", 8000);
    const dialled = rogue.stdout.length;
    await manager.close();
    assert.equal((await manager.exited).code, 0);
    // Only the rogue is announced meanwhile: the workers try it, and must refuse it, before the real one is back.
    await untilStdout(rogue, (l) => rogue.stdout.slice(dialled).includes(l) && /"event":"tls(-failed)?"/.test(l), 15_000, "a worker dialling the rogue");
    const started = performance.now();
    manager = await McpManager.start(fx.certs, ["--crl", join(fx.dir, "crl.pem")], { launcher: lab.launcher("mgr2"), mdns: true });
    managers.push(manager);
    for (const id of ["w1", "w2", "w3"]) {
      await manager.waitForWorker(id, (w) => w.connected && w.state === "healthy", 20_000);
      t.diagnostic(`${id} healthy ${Math.round(performance.now() - started)} ms after the new manager started`);
    }
    const seen = await watching.done;
    assert.ok(
      seen.events.some((e) => e.event === "Removed" && e.name === "mcp-fleet manager on mgr._mcp-fleet._tcp.local."),
      `the old manager said goodbye on mDNS: ${JSON.stringify(seen.events)}`,
    );
    assert.ok(seen.events.some((e) => e.event === "Added" && e.name === "mcp-fleet manager on mgr2._mcp-fleet._tcp.local."));
  });

  it("the rogue announcer never got a hello, though the workers tried it; all stayed with the real manager", () => {
    const events = rogue.stdout.map((l) => JSON.parse(l) as { event: string });
    assert.ok(events.some((e) => e.event === "tls-failed" || e.event === "tls"), `the rogue was dialled: ${rogue.stdout.join("\n")}`);
    assert.deepEqual(events.filter((e) => e.event === "upgrade" || e.event === "message"), [], "no worker went past TLS with it");
    for (const id of ["w1", "w2", "w3"]) {
      const refused = workers.get(id)!.lines.filter((l) => l.kind === "manager_rejected");
      for (const r of refused) assert.match(String(r.url), new RegExp(lab.host("rogue").address.replace(/\./g, "\\.")));
    }
  });

  describe("bonjour-service pitfalls, handled", () => {
    let first: Proc;
    let second: Proc;

    it("a name already in use on the LAN: the second announcer renames itself and announces", async () => {
      first = lab.script("a1", "announce a1", "announce.ts", ["dup"]);
      await first.waitFor((l) => l.msg === "announcing", 10_000, "first announces");
      second = lab.script("a2", "announce a2", "announce.ts", ["dup"]);
      const line = await second.waitFor((l) => l.msg === "announcing", 10_000, "second announces");
      assert.equal(line.instance, "dup (2)");
      assert.ok(second.lines.some((l) => l.msg === "mDNS name in use by another host; renamed"));
    });

    it("addresses are announced again when an interface changes", async () => {
      execFileSync("ip", ["-n", lab.host("a1").ns, "addr", "add", "10.213.0.201/24", "dev", "eth0"]);
      await first.waitFor((l) => l.msg === "announcing again on mDNS", 10_000, "re-announcement");
      const seen = await zeroconf("obs", 3);
      const dup = seen.services.find((s) => s.name === "dup._mcp-fleet._tcp.local.");
      assert.ok(dup?.addresses?.includes("10.213.0.201"), JSON.stringify(seen.services));
    });

    it("a service that dies silently is dropped by our browser; one that stops says goodbye and is dropped at once", async () => {
      const browser = lab.script("obs", "browse", "browse.ts", ["1000"]);
      const names = () => (browser.lines.filter((l) => l.msg === "peers").at(-1)?.peers as Array<{ name: string }> | undefined)?.map((p) => p.name) ?? [];
      const until = async (pred: () => boolean, ms: number, what: string) => {
        const deadline = performance.now() + ms;
        while (!pred()) {
          assert.ok(performance.now() < deadline, `${what}; last: ${JSON.stringify(names())}`);
          await sleep(100);
        }
        return ms - (deadline - performance.now());
      };
      await until(() => names().includes("dup") && names().includes("dup (2)"), 10_000, "both seen");
      second.kill("SIGKILL"); // no goodbye
      const pruned = await until(() => !names().includes("dup (2)"), 6000, "silent one dropped");
      assert.ok(names().includes("dup"));
      first.kill("SIGTERM"); // goodbye
      const gone = await until(() => !names().includes("dup"), 1500, "goodbye honoured");
      assert.ok(gone < 1500 && pruned > 1000, `pruned after ${Math.round(pruned)} ms, goodbye after ${Math.round(gone)} ms`);
      browser.kill("SIGKILL");
    });

    it("port 5353 already taken does not crash the manager or the worker; --manager still works without mDNS", async () => {
      const holder = lab.run("busy", "5353 holder", ["-c", "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\nprint('bound',flush=True)\ntime.sleep(120)"], {}, ["/usr/bin/python3"]);
      await untilStdout(holder, (l) => l === "bound", 5000, "5353 held");
      const busy = await McpManager.start(fx.certs, ["--state", join(fx.dir, "busy-state.json")], { launcher: lab.launcher("busy"), mdns: true });
      managers.push(busy);
      await untilLine(busy, (l) => /mDNS unavailable/.test(String(l.msg)) && l.code === "EADDRINUSE", 10_000, "the manager's mDNS EADDRINUSE");
      const w = startWorker("w1", "busy", ["--manager", "wss://127.0.0.1:7443"]);
      await busy.waitForWorker("w1", (x) => x.state === "healthy", 10_000);
      await untilLine(w, (l) => /mDNS unavailable/.test(String(l.msg)), 10_000, "the worker noticing mDNS is unavailable, and carrying on");
      assert.ok(w.running);
      await busy.close();
      assert.equal((await busy.exited).code, 0);
      w.kill("SIGKILL");
      holder.kill("SIGKILL");
    });
  });
});
