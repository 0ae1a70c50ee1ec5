import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagerProc, makeCerts, startWorker, tempDir, type CertSet } from "../helpers/fleet.js";
import { killAll, runCli, sleep } from "../helpers/processes.js";
import { helloFor, rawClient } from "../helpers/raw-client.js";

/**
 * Peers that must be refused and never reach the registry, while honest workers stay healthy. Each case also
 * checks the manager said why, and the refused worker's own log tells a refused certificate from an
 * unreachable manager.
 */
describe("refused peers", () => {
  let certs: CertSet;
  let foreign: CertSet;
  let cleanup: Array<() => Promise<void>> = [];
  let manager: ManagerProc;
  const honest = ["h1", "h2"];

  before(async () => {
    const a = await tempDir("refusal");
    const b = await tempDir("refusal-foreign");
    cleanup = [a.cleanup, b.cleanup];
    certs = await makeCerts(a.path, [...honest, "liar", "garbage", "junk", "binary", "gone"]);
    const revoked = await runCli(["certs", "revoke", "gone", "--dir", a.path]);
    assert.equal(revoked.code, 0, revoked.stderr);
    // Same fleet name, same worker id scheme: only the CA differs.
    foreign = await makeCerts(b.path, ["intruder"]);
    manager = await ManagerProc.start(certs, ["--crl", `${a.path}/crl.pem`]);
    for (const id of honest) startWorker(certs, id, manager.url);
    for (const id of honest) await manager.waitForState(id, "healthy", 5000);
  });
  after(async () => {
    killAll();
    for (const c of cleanup) await c();
  });

  it("no client certificate: refused at the TLS handshake", async () => {
    const from = manager.lines.length;
    const { done } = rawClient(manager.url, { ca: certs.ca });
    const outcome = await done;
    assert.equal(outcome.opened, false);
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "TLS refusal logged", from);
    assert.equal(refusal.reason, "no client certificate");
  });

  it("a certificate from another CA: refused at the handshake; the real worker logs a refused certificate", async () => {
    const from = manager.lines.length;
    const raw = await rawClient(manager.url, { ca: certs.ca, ...foreign.worker("intruder") }).done;
    assert.equal(raw.opened, false);
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "TLS refusal logged", from);
    assert.equal(refusal.reason, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    assert.match(String(refusal.subject), /CN=intruder/);

    // The real agent checks its own material first and says what is wrong instead of dialling in vain.
    const w = startWorker({ ...foreign, ca: certs.ca }, "intruder", manager.url);
    assert.equal((await w.exited).code, 2);
    assert.ok(w.lines.some((l) => /intruder\.pem was not issued by the CA/.test(String(l.raw))));
  });

  it("a revoked certificate: refused at the handshake with the reason; the real worker logs a refused certificate", async () => {
    const from = manager.lines.length;
    const w = startWorker(certs, "gone", manager.url);
    const line = await w.waitFor((l) => l.kind !== undefined, 5000, "connection failure classified");
    assert.equal(line.kind, "certificate_refused", JSON.stringify(line));
    assert.match(String(line.msg), /refused this worker's certificate/);
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, "refusal logged", from);
    assert.equal(refusal.reason, "CERT_REVOKED");
    w.kill("SIGKILL");
  });

  it("the manager's own certificate used as a client: closed with the wrong-role code", async () => {
    const from = manager.lines.length;
    const outcome = await rawClient(manager.url, { ca: certs.ca, cert: certs.managerCert, key: certs.managerKey }, (ws) =>
      ws.send(JSON.stringify(helloFor("manager"))),
    ).done;
    assert.equal(outcome.closeCode, 4003);
    assert.match(outcome.closeReason, /role/);
    await manager.waitFor((l) => /not a worker of this fleet/.test(String(l.msg)), 2000, "wrong role logged", from);
  });

  it("a hello that claims another id: closed with the identity code", async () => {
    const outcome = await rawClient(manager.url, { ca: certs.ca, ...certs.worker("liar") }, (ws) =>
      ws.send(JSON.stringify(helloFor("h1"))),
    ).done;
    assert.equal(outcome.closeCode, 4002);
    assert.match(outcome.closeReason, /claims "h1", certificate is "liar"/);
  });

  it("a malformed frame from an authenticated worker closes that session with the protocol-error code", async () => {
    // Not JSON at all, before hello.
    const notJson = await rawClient(manager.url, { ca: certs.ca, ...certs.worker("junk") }, (ws) => ws.send("{not json")).done;
    assert.equal(notJson.closeCode, 4000);
    assert.match(notJson.closeReason, /not JSON/);

    // A session that got as far as healthy, then sends a message that is JSON but not the protocol.
    const from = manager.lines.length;
    const invalid = rawClient(manager.url, { ca: certs.ca, ...certs.worker("garbage") }, (ws) =>
      ws.send(JSON.stringify(helloFor("garbage"))),
    );
    await manager.waitForState("garbage", "healthy", 3000, from);
    invalid.ws.send(JSON.stringify({ type: "heartbeat", seq: -1, metrics: {} }));
    const outcome = await invalid.done;
    assert.equal(outcome.closeCode, 4000);
    assert.match(outcome.closeReason, /protocol error: invalid/);
    const lost = await manager.waitForState("garbage", "unhealthy", 2000, from);
    assert.match(lost.reasons[0]!.message, /protocol error/);

    // A binary frame.
    const binary = await rawClient(manager.url, { ca: certs.ca, ...certs.worker("binary") }, (ws) =>
      ws.send(Buffer.from([1, 2, 3])),
    ).done;
    assert.equal(binary.closeCode, 4000);
  });

  it("the refused never reached the registry, and the honest workers stayed healthy and served", async () => {
    await sleep(1500); // long enough for one more heartbeat round
    const seen = new Set(manager.transitions().map((t) => t.worker));
    for (const id of ["intruder", "manager", "liar", "junk", "binary", "gone"]) assert.ok(!seen.has(id), `${id} never in the registry`);
    for (const id of honest) {
      assert.deepEqual(
        manager.transitions(id).map((t) => t.to),
        ["healthy"],
        `${id} went healthy once and never changed`,
      );
    }
    // The manager still accepts new honest sessions after all that.
    const from = manager.lines.length;
    const w = startWorker(certs, "liar", manager.url);
    await manager.waitForState("liar", "healthy", 5000, from);
    w.kill("SIGKILL");
  });

  it("an unreachable manager is logged as unreachable, not as a certificate problem", async () => {
    const w = startWorker(certs, "junk", "wss://127.0.0.1:1");
    const line = await w.waitFor((l) => l.kind !== undefined, 5000, "connection failure classified");
    assert.equal(line.kind, "unreachable", JSON.stringify(line));
    assert.match(String(line.msg), /manager unreachable/);
    w.kill("SIGKILL");
  });
});
