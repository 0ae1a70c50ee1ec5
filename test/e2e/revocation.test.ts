import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCa, createCrl } from "../../src/pki/generate.js";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { runCli, sleep, type Proc } from "../helpers/processes.js";
import { rawClient } from "../helpers/raw-client.js";
import { tlsProbe } from "../helpers/tls-probe.js";

describe("revocation without a restart", () => {
  const honest = ["r1", "r2"];
  // "late" and "renewed" never run an agent: probes with their certificates show what the manager lets in.
  const fx = useCerts("revoke", [...honest, "victim", "late", "renewed"], { before, after });
  let manager: ManagerProc;
  const workers = new Map<string, Proc>();
  /** A TLS session of the victim's from before its revocation. */
  let victimSession: Buffer | undefined;

  before(async () => {
    // No --crl: the manager finds crl.pem beside ca.pem, as `certs init` laid them out.
    manager = await ManagerProc.start(fx.certs);
    for (const id of [...honest, "victim"]) workers.set(id, startWorker(fx.certs, id, manager.url));
    for (const id of [...honest, "victim"]) await manager.waitForState(id, "healthy", 20_000);
    const probe = await tlsProbe(manager.port, { ca: fx.certs.ca, ...fx.certs.worker("victim") });
    assert.equal(probe.endedByManager, false, "before revocation the victim's certificate is let in");
    victimSession = probe.session;
  });

  it("certs revoke ends the live session within 1 s with the revoked code; other sessions are untouched", async (t) => {
    const from = manager.lines.length;
    const revoked = await runCli(["certs", "revoke", "victim", "--dir", fx.dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const done = performance.now();
    const closing = await manager.waitFor(
      (l) => l.msg === "closing worker session" && l.worker === "victim" && l.code === 4004,
      1000,
      "victim's session closed with 4004",
      from,
    );
    t.diagnostic(`session closed ${Math.round(closing.receivedAt - done)} ms after certs revoke returned`);
    // Out of the live set: offline with the reason, not an alarm about a lost worker.
    const out = await manager.waitForState("victim", "offline", 1000, from);
    assert.deepEqual(out.reasons, [{ code: "revoked", message: "certificate revoked" }]);
    assert.ok(!manager.transitions("victim").some((e) => e.to === "unhealthy"), "never marked unhealthy");
    const w = workers.get("victim")!;
    const seen = await w.waitFor((l) => l.code === 4004, 2000, "the worker was told why");
    assert.match(String(seen.msg), /certificate revoked/);
    assert.ok((seen.retryInMs as number) >= 0);
  });

  it("from then on the revoked certificate is refused at the handshake, by a fresh agent and a raw client alike", async () => {
    const from = manager.lines.length;
    workers.get("victim")!.kill("SIGKILL");
    const again = startWorker(fx.certs, "victim", manager.url);
    const failure = await again.waitFor((l) => l.kind !== undefined, 5000, "classified failure");
    assert.equal(failure.kind, "certificate_refused");
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "refusal", from);
    assert.equal(refusal.reason, "CERT_REVOKED");
    const raw = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("victim") }).done;
    assert.equal(raw.opened, false);
    again.kill("SIGKILL");
  });

  it("a TLS session resumed from before the revocation is refused at the handshake too", async () => {
    assert.ok(victimSession, "the manager issued a session ticket");
    const from = manager.lines.length;
    const probe = await tlsProbe(manager.port, { ca: fx.certs.ca, ...fx.certs.worker("victim") }, victimSession);
    assert.equal(probe.reused, true, "the session was resumed (the check is not skipped for lack of a full handshake)");
    assert.equal(probe.endedByManager, true);
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)) && l.resumed === true, 2000, "refusal", from);
    assert.equal(refusal.reason, "CERT_REVOKED");
  });

  it("SIGHUP reloads the CRL; a CRL the fleet CA did not sign is refused and the last good one kept", async () => {
    let from = manager.lines.length;
    manager.kill("SIGHUP");
    const reloaded = await manager.waitFor((l) => l.msg === "CRL reloaded", 2000, "reload on SIGHUP", from);
    assert.equal(reloaded.reason, "SIGHUP");

    from = manager.lines.length;
    const crl = join(fx.dir, "crl.pem");
    const good = readFileSync(crl, "utf8");
    const stranger = await createCa({ fleet: "test", days: 1 });
    writeFileSync(crl, await createCrl({ ca: stranger, revoked: [] })); // would un-revoke the victim, if believed
    const bad = await manager.waitFor((l) => /CRL not reloaded/.test(String(l.msg)), 2000, "foreign CRL refused", from);
    assert.match(String(bad.err), /not a CRL signed by the fleet CA/);
    const raw = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("victim") }).done;
    assert.equal(raw.opened, false, "the victim is still refused: the last good CRL is in force");
    writeFileSync(crl, good);
    await manager.waitFor((l) => l.msg === "CRL reloaded", 2000, "good CRL back", from);
  });

  it("an older CRL of the fleet's own, put back in place of a newer one, is refused: the later revocation stays in force", async () => {
    const crl = join(fx.dir, "crl.pem");
    const older = readFileSync(crl); // lists the victim only
    let from = manager.lines.length;
    const revoked = await runCli(["certs", "revoke", "late", "--dir", fx.dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await manager.waitFor((l) => l.msg === "CRL reloaded" && (l.newlyRevoked as string[]).length === 1, 2000, "late revoked", from);
    from = manager.lines.length;
    writeFileSync(crl, older); // signed by the fleet CA, and would un-revoke "late" if believed
    const refused = await manager.waitFor((l) => /CRL not reloaded/.test(String(l.msg)), 2000, "older CRL refused", from);
    assert.match(String(refused.err), /older CRL: its CRL number \(\d+\) is not above the one in force \(\d+\)/);
    const raw = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker("late") }).done;
    assert.equal(raw.opened, false, "late is still refused: the newer CRL is in force");
  });

  it("revoking an id revokes its renewed certificates too: after issue --force, the older certificate is refused", async () => {
    const { cert, key } = fx.certs.worker("renewed");
    const old = { ca: fx.certs.ca, cert: join(fx.dir, "renewed-old.pem"), key: join(fx.dir, "renewed-old-key.pem") };
    copyFileSync(cert, old.cert);
    copyFileSync(key, old.key);
    const renewed = await runCli(["certs", "issue", "renewed", "--force", "--dir", fx.dir]);
    assert.equal(renewed.code, 0, renewed.stderr);
    const from = manager.lines.length;
    const revoked = await runCli(["certs", "revoke", "renewed", "--dir", fx.dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const reloaded = await manager.waitFor((l) => l.msg === "CRL reloaded", 2000, "CRL reloaded", from);
    for (const tls of [old, { ca: fx.certs.ca, cert, key }]) {
      const raw = await rawClient(manager.url, tls).done;
      assert.equal(raw.opened, false, `${tls.cert} is refused`);
    }
    assert.equal((reloaded.newlyRevoked as string[]).length, 2, "the old and the new certificate");
    assert.match(revoked.stdout, /worker "renewed": revoked serials [0-9a-f]+, [0-9a-f]+;/);
  });

  it("the other workers stayed healthy throughout", async () => {
    await sleep(500);
    for (const id of honest) assert.deepEqual(manager.transitions(id).map((x) => x.to), ["healthy"]);
  });
});
