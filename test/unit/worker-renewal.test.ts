import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join as joinPath } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { inspectCsr, keyFingerprint } from "../../src/pki/csr.js";
import { initFleet, issueWorker } from "../../src/pki/store.js";
import { loadTlsMaterial, type TlsMaterial } from "../../src/tls/contexts.js";
import { enrolledPaths, saveEnrolledIdentity, type EnrolledPaths } from "../../src/worker/join/enrolled-identity.js";
import { CertificateRenewer } from "../../src/worker/join/renewal.js";
import { tempDir } from "../helpers/fleet.js";
import { signCsr } from "../helpers/join-server.js";

const read = (p: string) => readFileSync(p, "utf8");
type Line = Record<string, unknown>;

describe("worker side of renewal: certificate.renew, then certificate.install", () => {
  let dir = "";
  let cleanup: () => Promise<void> = async () => {};
  let ca: { certPem: string; keyPem: string };
  let n = 0;

  before(async () => {
    const t = await tempDir("worker-renewal");
    cleanup = t.cleanup;
    dir = t.path;
    await initFleet({ dir, fleet: "test" });
    await issueWorker({ dir, id: "w1" });
    ca = { certPem: read(joinPath(dir, "ca.pem")), keyPem: read(joinPath(dir, "ca-key.pem")) };
  });
  after(() => cleanup());

  function enrolled(): { paths: EnrolledPaths; renewer: CertificateRenewer; lines: Line[]; installed: TlsMaterial[] } {
    const paths = enrolledPaths(joinPath(dir, `state-${n++}`));
    saveEnrolledIdentity(paths, { caPem: ca.certPem, certPem: read(joinPath(dir, "workers", "w1.pem")), keyPem: read(joinPath(dir, "workers", "w1-key.pem")) });
    let material = loadTlsMaterial(paths, "worker");
    const lines: Line[] = [];
    const installed: TlsMaterial[] = [];
    const renewer = new CertificateRenewer({
      paths,
      current: () => material,
      installed: (m) => {
        material = m;
        installed.push(m);
      },
      log: createLogger({ name: "t", level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Line) } }),
    });
    return { paths, renewer, lines, installed };
  }

  it("a new key, a CSR for it, the signed certificate kept with it atomically and used from then on", async () => {
    const { paths, renewer, lines, installed } = enrolled();
    const oldKey = keyFingerprint(read(paths.key));
    const { csr } = await renewer.renew({ newKey: true });
    const inspected = await inspectCsr(csr);
    assert.ok(inspected.ok);
    assert.notEqual(inspected.keyFingerprint, oldKey, "a new key");
    assert.equal(statSync(paths.pendingKey).mode & 0o777, 0o600);
    assert.equal(keyFingerprint(read(paths.key)), oldKey, "the key in use stays until the certificate arrives");
    const signed = await signCsr({ ca, csrPem: csr, fleet: "test", id: "w1" });
    const result = await renewer.install({ certificate: signed.certPem });
    assert.equal(result.serialNumber, signed.serialNumber);
    assert.equal(keyFingerprint(read(paths.key)), inspected.keyFingerprint);
    assert.equal(statSync(paths.key).mode & 0o777, 0o600);
    assert.equal(existsSync(paths.pendingKey), false);
    assert.equal(installed.length, 1);
    assert.equal(installed[0]!.self.serialNumber, signed.serialNumber);
    const line = lines.find((l) => l.msg === "certificate renewed");
    assert.ok(line);
    assert.equal(line.serial, signed.serialNumber);
  });

  it("newKey false keeps the key", async () => {
    const { paths, renewer } = enrolled();
    const { csr } = await renewer.renew({ newKey: false });
    const inspected = await inspectCsr(csr);
    assert.ok(inspected.ok && inspected.keyFingerprint === keyFingerprint(read(paths.key)));
  });

  it("refuses an install without a renew, and certificates for another id, another key, another role or another CA", async () => {
    const { paths, renewer, installed } = enrolled();
    const before = read(paths.cert);
    await assert.rejects(renewer.install({ certificate: before }), { code: "no_renewal" });
    const { csr } = await renewer.renew({ newKey: true });
    const otherCa = await tempDir("worker-renewal-other");
    try {
      await initFleet({ dir: otherCa.path, fleet: "test" });
      const foreign = { certPem: read(joinPath(otherCa.path, "ca.pem")), keyPem: read(joinPath(otherCa.path, "ca-key.pem")) };
      const { csr: strangerCsr } = await enrolled().renewer.renew({ newKey: true });
      for (const [why, pem] of [
        ["id", (await signCsr({ ca, csrPem: csr, fleet: "test", id: "w2" })).certPem],
        ["key", (await signCsr({ ca, csrPem: strangerCsr, fleet: "test", id: "w1" })).certPem],
        ["role", (await signCsr({ ca, csrPem: csr, fleet: "test", id: "w1", role: "manager" })).certPem],
        ["CA", (await signCsr({ ca: foreign, csrPem: csr, fleet: "test", id: "w1" })).certPem],
        ["expired", (await signCsr({ ca, csrPem: csr, fleet: "test", id: "w1", notBefore: new Date(Date.now() - 2e5), notAfter: new Date(Date.now() - 1e5) })).certPem],
      ] as const) {
        await assert.rejects(renewer.install({ certificate: pem }), { code: "bad_certificate" }, why);
      }
    } finally {
      await otherCa.cleanup();
    }
    await assert.rejects(renewer.install({ certificate: "nope" }), { code: "bad_params" });
    assert.equal(read(paths.cert), before, "nothing was written");
    assert.equal(installed.length, 0);
  });
});
