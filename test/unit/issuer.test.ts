import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadIssuer, type Issuer } from "../../src/enroll/issuer.js";
import { isFleetError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createCsr } from "../../src/pki/csr.js";
import { crlSignedBy, readCrlEntries } from "../../src/pki/generate.js";
import { readCertificate } from "../../src/pki/identity.js";
import { readInventory } from "../../src/pki/inventory.js";
import { certLayout } from "../../src/pki/layout.js";
import { initFleet, issueWorker, listCertificates } from "../../src/pki/store.js";

const log = createLogger({ name: "issuer-test", level: "silent" });
const DAY = 86_400_000;

describe("the issuer: enrolled certificates, who holds an id, revoking the others", () => {
  let dir: string;
  let files: ReturnType<typeof certLayout>;
  let issuer: Issuer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "issuer-"));
    await initFleet({ dir, fleet: "lab" });
    files = certLayout(dir);
    const loaded = await loadIssuer({ caPath: files.ca, caKeyPath: files.caKey, fleet: "lab", log });
    assert.ok(loaded);
    issuer = loaded;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("issues for a CSR's key and records the certificate in inventory.json with its key and how it was issued", async () => {
    const { csrPem, keyPem } = await createCsr({ id: "e1" });
    const cert = await issuer.issue({ csrPem, id: "e1", labels: { rack: "r1" }, lifetimeMs: 7 * DAY, source: "join" });
    const facts = readCertificate(cert.certPem);
    assert.deepEqual(facts.identity, { fleet: "lab", role: "worker", id: "e1" });
    assert.deepEqual(facts.labels, { rack: "r1" });
    assert.equal(facts.serialNumber, cert.serialNumber);
    writeFileSync(join(dir, "e1.pem"), cert.certPem);
    execFileSync("openssl", ["verify", "-CAfile", files.ca, join(dir, "e1.pem")], { stdio: "pipe" });
    const inventory = await readInventory(files.inventory);
    const entry = inventory.certificates.find((c) => c.serialNumber === cert.serialNumber);
    assert.ok(entry, "recorded");
    assert.equal(entry.id, "e1");
    assert.equal(entry.role, "worker");
    assert.equal(entry.source, "join");
    assert.equal(entry.keyFingerprint, cert.keyFingerprint);
    assert.equal(entry.notAfter, cert.notAfter.toISOString());
    // `certs list` sees it, and `certs revoke` reaches it (covered below through revokeOthers' shared code).
    assert.ok((await listCertificates({ dir })).some((c) => c.serialNumber === cert.serialNumber && c.status === "valid"));
    assert.equal(typeof keyPem, "string");
  });

  it("a bad CSR, a bad id or bad labels is an E_JOIN error, and nothing is recorded", async () => {
    const before = (await readInventory(files.inventory)).certificates.length;
    const { csrPem } = await createCsr({ id: "x" });
    const cases: Array<{ csrPem: string; id: string; labels: Record<string, string> }> = [
      { csrPem: "nope", id: "x1", labels: {} },
      { csrPem, id: "Not_A_Label", labels: {} },
      { csrPem, id: "x2", labels: { "bad key": "v" } },
    ];
    for (const c of cases) {
      await assert.rejects(issuer.issue({ ...c, lifetimeMs: DAY, source: "join" }), (err: unknown) => isFleetError(err, "E_JOIN"));
    }
    assert.equal((await readInventory(files.inventory)).certificates.length, before);
  });

  it("heldByOther: another key's live certificate holds the id; the same key, a revoked or an expired one does not", async () => {
    const a = await createCsr({ id: "e2" });
    const b = await createCsr({ id: "e2" });
    const issued = await issuer.issue({ csrPem: a.csrPem, id: "e2", labels: {}, lifetimeMs: DAY, source: "join" });
    const now = new Date();
    assert.equal(await issuer.heldByOther("e2", issued.keyFingerprint, now), false, "the same key re-joins");
    const other = (await import("../../src/pki/csr.js")).keyFingerprint(b.keyPem);
    assert.equal(await issuer.heldByOther("e2", other, now), true, "another key is refused");
    assert.equal(await issuer.heldByOther("e2", other, new Date(now.getTime() + 2 * DAY)), false, "once it expired, the id is free");
    assert.equal(await issuer.heldByOther("nobody", other, now), false);
  });

  it("heldByOther: a hand-issued certificate holds its id too, except for the host with its key", async () => {
    await issueWorker({ dir, id: "hand1" });
    const handKey = readFileSync(files.workerKey("hand1"), "utf8");
    const { keyFingerprint } = await import("../../src/pki/csr.js");
    const stranger = await createCsr({ id: "hand1" });
    assert.equal(await issuer.heldByOther("hand1", keyFingerprint(stranger.keyPem), new Date()), true);
    assert.equal(await issuer.heldByOther("hand1", keyFingerprint(handKey), new Date()), false);
  });

  it("revokeOthers revokes every other live certificate of the id, hand-issued ones too, in a CRL the CA signed", async () => {
    await issueWorker({ dir, id: "e3" });
    const handSerial = readCertificate(readFileSync(files.worker("e3"))).serialNumber;
    const first = await issuer.issue({ csrPem: (await createCsr({ id: "e3" })).csrPem, id: "e3", labels: {}, lifetimeMs: DAY, source: "join" });
    const kept = await issuer.issue({ csrPem: (await createCsr({ id: "e3" })).csrPem, id: "e3", labels: {}, lifetimeMs: DAY, source: "join" });
    const numberBefore = BigInt((await readInventory(files.inventory)).crlNumber);
    const revoked = await issuer.revokeOthers("e3", kept.serialNumber);
    assert.deepEqual(new Set(revoked), new Set([handSerial, first.serialNumber]));
    const crlPem = readFileSync(files.crl, "utf8");
    assert.ok(await crlSignedBy(crlPem, readFileSync(files.ca, "utf8")), "signed by the fleet CA");
    const listed = new Set(readCrlEntries(crlPem).map((e) => e.serialNumber));
    assert.ok(listed.has(handSerial) && listed.has(first.serialNumber));
    assert.ok(!listed.has(kept.serialNumber), "the new one stays valid");
    assert.ok(BigInt((await readInventory(files.inventory)).crlNumber) > numberBefore, "numbered above the last");
    // OpenSSL agrees: the revoked one fails a CRL check, the kept one passes.
    writeFileSync(join(dir, "first.pem"), first.certPem);
    writeFileSync(join(dir, "kept.pem"), kept.certPem);
    const verify = (p: string) => execFileSync("openssl", ["verify", "-crl_check", "-CAfile", files.ca, "-CRLfile", files.crl, p], { stdio: "pipe" });
    assert.throws(() => verify(join(dir, "first.pem")));
    verify(join(dir, "kept.pem"));
    assert.equal(await issuer.heldByOther("e3", kept.keyFingerprint, new Date()), false);
  });

  it("200 joins at once all get their certificate, and every one is in the inventory", async () => {
    const csrs = await Promise.all(Array.from({ length: 200 }, (_, i) => createCsr({ id: `burst-${i}` })));
    const started = performance.now();
    const certs = await Promise.all(csrs.map((c, i) => issuer.issue({ csrPem: c.csrPem, id: `burst-${i}`, labels: {}, lifetimeMs: DAY, source: "join" })));
    const concurrentMs = performance.now() - started;
    const serials = new Set((await readInventory(files.inventory)).certificates.map((c) => c.serialNumber));
    for (const c of certs) assert.ok(serials.has(c.serialNumber));
    const seqStarted = performance.now();
    for (let i = 0; i < 200; i++) {
      await issuer.issue({ csrPem: csrs[i]!.csrPem, id: `seq-${i}`, labels: {}, lifetimeMs: DAY, source: "renewal" });
    }
    const sequentialMs = performance.now() - seqStarted;
    console.log(`# 200 concurrent issues: ${Math.round(concurrentMs)} ms; 200 sequential: ${Math.round(sequentialMs)} ms`);
    assert.equal((await readInventory(files.inventory)).certificates.filter((c) => c.id.startsWith("seq-")).length, 200);
  });

  it("a missing or wrong CA key gives no issuer (enrollment off), with one log line", async () => {
    const lines: string[] = [];
    const capture = createLogger({ name: "t", level: "info", destination: { write: (l: string) => void lines.push(l) } });
    assert.equal(await loadIssuer({ caPath: files.ca, caKeyPath: join(dir, "missing-key.pem"), fleet: "lab", log: capture }), null);
    writeFileSync(join(dir, "wrong-key.pem"), (await createCsr({ id: "k" })).keyPem);
    assert.equal(await loadIssuer({ caPath: files.ca, caKeyPath: join(dir, "wrong-key.pem"), fleet: "lab", log: capture }), null);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /enrollment disabled/);
  });
});
