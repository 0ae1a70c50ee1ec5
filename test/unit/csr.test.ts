import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createCsr, inspectCsr, keyFingerprint } from "../../src/pki/csr.js";
import { caSigner, createCa, issueCertificate, issueForPublicKey, type Pem } from "../../src/pki/generate.js";
import { describeCertificate, identityFromSubjectAltName } from "../../src/pki/identity.js";
import { labelsFromSubjectAltName, labelUris } from "../../src/pki/labels-san.js";

describe("certificate requests and certificates for a host's own key", () => {
  let dir: string;
  let ca: Pem;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "csr-"));
    ca = await createCa({ fleet: "lab", days: 300 });
    writeFileSync(join(dir, "ca.pem"), ca.certPem);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a CSR made with a new key, or a given one, names that key; inspectCsr agrees", async () => {
    const made = await createCsr({ id: "w1" });
    const seen = await inspectCsr(made.csrPem);
    assert.ok(seen.ok, JSON.stringify(seen));
    assert.equal(seen.keyFingerprint, keyFingerprint(made.keyPem));
    assert.equal(seen.keyFingerprint, keyFingerprint(seen.publicKeyPem));
    const again = await createCsr({ id: "w1", keyPem: made.keyPem });
    assert.equal(again.keyPem, made.keyPem);
    const seenAgain = await inspectCsr(again.csrPem);
    assert.ok(seenAgain.ok);
    assert.equal(seenAgain.keyFingerprint, seen.keyFingerprint);
    // OpenSSL reads it too, and agrees the signature is good.
    writeFileSync(join(dir, "w1.csr"), made.csrPem);
    execFileSync("openssl", ["req", "-in", join(dir, "w1.csr"), "-noout", "-verify"], { stdio: "pipe" });
  });

  it("a CSR whose signature is broken, an RSA CSR, and garbage are refused", async () => {
    const made = await createCsr({ id: "w2" });
    const body = made.csrPem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const der = Buffer.from(body, "base64");
    der[der.length - 5] = der[der.length - 5]! ^ 0xff; // inside the signature
    const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE REQUEST-----\n`;
    const b = await inspectCsr(broken);
    assert.equal(b.ok, false);

    const rsaKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    writeFileSync(join(dir, "rsa-key.pem"), rsaKey);
    const rsaCsr = execFileSync("openssl", ["req", "-new", "-key", join(dir, "rsa-key.pem"), "-subj", "/CN=w3"], { encoding: "utf8" });
    const r = await inspectCsr(rsaCsr);
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.error : "", /P-256/);

    const p384 = generateKeyPairSync("ec", { namedCurve: "secp384r1" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    writeFileSync(join(dir, "p384-key.pem"), p384);
    const p384Csr = execFileSync("openssl", ["req", "-new", "-key", join(dir, "p384-key.pem"), "-subj", "/CN=w4"], { encoding: "utf8" });
    assert.equal((await inspectCsr(p384Csr)).ok, false);

    for (const garbage of ["", "hello", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", ca.certPem]) {
      assert.equal((await inspectCsr(garbage)).ok, false, `refused: ${garbage.slice(0, 20)}`);
    }
  });

  it("a certificate issued for a CSR's key verifies against the CA with openssl, and carries identity, labels, role and lifetime", async () => {
    const { csrPem, keyPem } = await createCsr({ id: "ignored-name" });
    const seen = await inspectCsr(csrPem);
    assert.ok(seen.ok);
    const labels = { rack: "r1", "example.com/zone": "eu-west.1", empty: "" };
    const lifetimeMs = 7 * 86_400_000;
    const issued = await issueForPublicKey({
      signer: await caSigner(ca),
      publicKeyPem: seen.publicKeyPem,
      identity: { fleet: "lab", role: "worker", id: "w5" },
      lifetimeMs,
      labels,
    });
    const path = join(dir, "w5.pem");
    writeFileSync(path, issued.certPem);
    execFileSync("openssl", ["verify", "-CAfile", join(dir, "ca.pem"), "-purpose", "sslclient", path], { stdio: "pipe" });
    const cert = new X509Certificate(issued.certPem);
    assert.equal(keyFingerprint(cert.publicKey), keyFingerprint(keyPem), "the host's key, not a new one");
    assert.ok(cert.checkPrivateKey((await import("node:crypto")).createPrivateKey(keyPem)));
    const facts = describeCertificate(cert);
    assert.deepEqual(facts.identity, { fleet: "lab", role: "worker", id: "w5" });
    assert.deepEqual(facts.labels, labels);
    assert.equal(facts.serialNumber, issued.serialNumber);
    assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), lifetimeMs + 5 * 60_000, "7 days, backdated 5 minutes");
    assert.ok(Math.abs(issued.notAfter.getTime() - (Date.now() + lifetimeMs)) < 60_000);
    // A worker certificate is a TLS client only.
    assert.throws(() => execFileSync("openssl", ["verify", "-CAfile", join(dir, "ca.pem"), "-purpose", "sslserver", path], { stdio: "pipe" }));
  });

  it("a lifetime of minutes is backdated a tenth of it, and no certificate outlives its CA", async () => {
    const seen = await inspectCsr((await createCsr({ id: "w6" })).csrPem);
    assert.ok(seen.ok);
    const signer = await caSigner(ca);
    const short = await issueForPublicKey({ signer, publicKeyPem: seen.publicKeyPem, identity: { fleet: "lab", role: "worker", id: "w6" }, lifetimeMs: 60_000 });
    assert.equal(short.notAfter.getTime() - short.notBefore.getTime(), 66_000);
    const long = await issueForPublicKey({ signer, publicKeyPem: seen.publicKeyPem, identity: { fleet: "lab", role: "worker", id: "w6" }, lifetimeMs: 400 * 86_400_000 });
    assert.equal(long.notAfter.getTime(), Date.parse(new X509Certificate(ca.certPem).validTo));
  });

  it("hand-issued certificates keep their shape: identity URI, no labels, their days", async () => {
    const issued = await issueCertificate({ ca, identity: { fleet: "lab", role: "worker", id: "w7" }, days: 100 });
    const facts = describeCertificate(new X509Certificate(issued.certPem));
    assert.deepEqual(facts.identity, { fleet: "lab", role: "worker", id: "w7" });
    assert.deepEqual(facts.labels, {});
    assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), 100 * 86_400_000 + 5 * 60_000);
  });

  it("labels round-trip through the subjectAltName text, keys with '/' and '.' included; malformed label URIs are skipped", () => {
    const labels = { "a.b/c": "x", "k8s.io/role": "db-1", z: "", "dots.in.key": "v.1_2-3" };
    const uris = labelUris(labels);
    assert.ok(uris.every((u) => u.startsWith("urn:mcp-fleet:label:")));
    const san = ["URI:spiffe://lab/worker/w1", ...uris.map((u) => `URI:${u}`), "DNS:host"].join(", ");
    assert.deepEqual(labelsFromSubjectAltName(san), labels);
    // Node quotes entries that hold separators; those are read too.
    assert.deepEqual(labelsFromSubjectAltName(`URI:"urn:mcp-fleet:label:q=1", DNS:x`), { q: "1" });
    assert.deepEqual(labelsFromSubjectAltName("URI:urn:mcp-fleet:label:bad key=1, URI:urn:mcp-fleet:label:novalue, URI:urn:mcp-fleet:label:k=v!"), {});
    assert.deepEqual(labelsFromSubjectAltName(undefined), {});
    // Labels never get in the way of the identity.
    assert.deepEqual(identityFromSubjectAltName(san), { fleet: "lab", role: "worker", id: "w1" });
  });
});
