import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { identityFromSubjectAltName } from "../../src/pki/identity.js";
import { caPin } from "../../src/pki/pin.js";
import { ManagerProc, tempDir, useCerts } from "../helpers/fleet.js";
import { craftCsr, createToken, postJoin, spkiSha256 } from "../helpers/join.js";
import { Proc, runCli } from "../helpers/processes.js";
import { tlsProbe } from "../helpers/tls-probe.js";

/** The shortest lifetime the manager accepts: renewal falls due at about two thirds of it. */
const LIFETIME_MS = 60_000;

/**
 * Joining on loopback, where no mDNS is needed: what a hostile certificate request gets, and an enrolled worker's
 * certificate renewed over its live session, then revoked. The renewing worker joins first, so its two thirds of a
 * minute pass while the other case runs.
 */
describe("joining on loopback: hostile certificate requests, renewal, revocation", () => {
  // "held" is a hand-issued certificate: its id is taken as surely as an enrolled one.
  const fx = useCerts("join", ["held"], { before, after });
  let manager: ManagerProc;
  let renewing: Proc;
  let stateDir: string;
  let cleanupState = async () => {};
  let joinedAt = 0;

  before(async () => {
    manager = await ManagerProc.start(fx.certs, ["--cert-lifetime", "1m"]);
    const state = await tempDir("join-state");
    stateDir = state.path;
    cleanupState = state.cleanup;
    const token = await createToken(fx.dir, ["--uses", "1"]);
    renewing = new Proc("worker rn", ["worker", "--join", token.join, "--state-dir", stateDir, "--worker-id", "rn", "--manager", manager.url, "--no-mdns"]);
    await manager.waitForState("rn", "healthy", 20_000);
    joinedAt = performance.now();
  });
  after(() => cleanupState());

  it("a request asking for role manager, in its subject and SAN, gets a worker certificate for its requested id; an id another key holds is id_taken", async () => {
    const token = await createToken(fx.dir, ["--uses", "3", "--labels", "zone=lab"]);
    const hostile = await craftCsr({ subject: "CN=manager, O=mcp-fleet", uris: ["spiffe://test/manager/evil", "spiffe://test/worker/held"], dns: ["manager", "localhost"] });
    const ask = (requestedId: string) =>
      postJoin("127.0.0.1", manager.port, { token: { id: token.id, secret: token.secret }, requestedId, hostname: "evil", csr: hostile.csrPem });

    for (const taken of ["held", "rn"]) {
      const from = manager.lines.length;
      const r = await ask(taken);
      assert.equal(r.status, 409, JSON.stringify(r.answer));
      assert.deepEqual([r.answer.status, r.answer.code], ["refused", "id_taken"], `${taken}: ${JSON.stringify(r.answer)}`);
      await manager.waitFor((l) => l.msg === "join refused" && l.code === "id_taken" && l.requestedId === taken, 5000, `join refused id_taken ${taken}`, from);
    }

    const r = await ask("crafted");
    assert.equal(r.answer.status, "issued", JSON.stringify(r.answer));
    // What the manager presented on the join name: its leaf, role manager, and the pinned CA that signed it.
    const pinned = r.chain.find((c) => spkiSha256(c.publicKey.export({ type: "spki", format: "pem" })) === caPin(readFileSync(fx.certs.ca)));
    assert.ok(pinned && r.chain[0]!.verify(pinned.publicKey), "the chain holds the pinned CA, and it signed the leaf");
    assert.equal(identityFromSubjectAltName(r.chain[0]!.subjectAltName)?.role, "manager");

    const cert = new X509Certificate(String(r.answer.certificate));
    assert.deepEqual(identityFromSubjectAltName(cert.subjectAltName), { fleet: "test", role: "worker", id: "crafted" });
    assert.ok(!/manager|evil|held|localhost|DNS:/.test(cert.subjectAltName ?? ""), `nothing of the request's names: ${cert.subjectAltName}`);
    assert.ok(!/manager/.test(cert.subject), `the subject says nothing of manager: ${cert.subject}`);
    assert.match(cert.subjectAltName ?? "", /urn:mcp-fleet:label:zone=lab/, "the token's labels are in the certificate");
    assert.equal(spkiSha256(cert.publicKey.export({ type: "spki", format: "pem" })), spkiSha256(hostile.keyPem), "the request's own key");
    assert.ok(cert.verify(new X509Certificate(readFileSync(fx.certs.ca)).publicKey), "signed by the fleet CA");
    const life = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.ok(life <= LIFETIME_MS + 10 * 60_000, `the manager's lifetime, not anything the request said: ${cert.validFrom} – ${cert.validTo}`);
    assert.equal(r.answer.id, "crafted");
  });

  it("renewed over the live session before it expires: no unhealthy, no reconnect; then certs revoke closes the session (4004) and the next handshake is refused", { timeout: 120_000 }, async (t) => {
    const first = new X509Certificate(readFileSync(join(stateDir, "worker.pem")));
    const firstKey = spkiSha256(readFileSync(join(stateDir, "worker-key.pem")));
    const renewed = await manager.waitFor((l) => l.msg === "certificate renewed" && l.worker === "rn", LIFETIME_MS + 30_000, "certificate renewed");
    t.diagnostic(`renewed ${Math.round(renewed.receivedAt - joinedAt)} ms after the worker joined`);
    assert.ok(Date.parse(String(renewed.notAfter)) > Date.parse(first.validTo), `a later expiry: ${String(renewed.notAfter)} after ${first.validTo}`);
    assert.ok(renewed.receivedAt - joinedAt < LIFETIME_MS, "renewed before the first certificate expired");

    // The worker has it on disk, with a new key.
    const second = await until("the renewed certificate on disk", 5000, () => {
      const c = new X509Certificate(readFileSync(join(stateDir, "worker.pem")));
      return c.serialNumber !== first.serialNumber && c;
    });
    assert.equal(second.serialNumber.toLowerCase(), String(renewed.serial).toLowerCase());
    assert.notEqual(spkiSha256(readFileSync(join(stateDir, "worker-key.pem"))), firstKey, "a new key");
    assert.deepEqual(identityFromSubjectAltName(second.subjectAltName), identityFromSubjectAltName(first.subjectAltName), "the same identity");

    assert.deepEqual([...new Set(manager.transitions("rn").map((x) => x.to))], ["healthy"], "never unhealthy nor degraded");
    assert.equal(manager.lines.filter((l) => l.msg === "worker connected" && l.worker === "rn").length, 1, "one session throughout: no reconnect");

    const from = manager.lines.length;
    const revoked = await runCli(["certs", "revoke", "rn", "--dir", fx.dir]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await manager.waitFor((l) => l.msg === "closing worker session" && l.worker === "rn" && l.code === 4004, 5000, "rn's session closed with 4004", from);
    const told = await renewing.waitFor((l) => l.code === 4004, 5000, "the worker told it was revoked");
    t.diagnostic(`the worker retries in ${String(told.retryInMs)} ms`);
    renewing.kill("SIGKILL");
    // The next handshake with the renewed certificate and key, as the worker would make it: refused.
    const probe = await tlsProbe(manager.port, { ca: fx.certs.ca, cert: join(stateDir, "worker.pem"), key: join(stateDir, "worker-key.pem") });
    assert.equal(probe.endedByManager, true, "the renewed certificate is refused at the handshake");
    await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)) && l.reason === "CERT_REVOKED", 5000, "the manager's CERT_REVOKED refusal", from);
  });
});

async function until<T>(what: string, ms: number, probe: () => T | false | undefined): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
