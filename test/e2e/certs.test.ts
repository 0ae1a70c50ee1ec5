import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../helpers/fleet.js";
import { runCli } from "../helpers/processes.js";

describe("mcp-fleet certs", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ path: dir, cleanup } = await tempDir("certs")));
  after(() => cleanup());

  it("init then issue write the documented files, keys 0600, verifiable by openssl, P-256", async () => {
    const init = await runCli(["certs", "init", "--dir", dir, "--fleet", "lab"]);
    assert.equal(init.code, 0, init.stderr);
    const issue = await runCli(["certs", "issue", "w1", "--dir", dir]);
    assert.equal(issue.code, 0, issue.stderr);

    for (const f of ["ca.pem", "manager.pem", "crl.pem", "workers/w1.pem"]) {
      assert.ok(statSync(join(dir, f)).isFile(), `${f} exists`);
    }
    for (const f of ["ca-key.pem", "manager-key.pem", "workers/w1-key.pem"]) {
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is mode 0600`);
      const key = createPrivateKey(readFileSync(join(dir, f)));
      assert.equal(key.asymmetricKeyType, "ec");
      assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1", `${f} is P-256`);
    }

    const out = execFileSync("openssl", ["verify", "-CAfile", join(dir, "ca.pem"), join(dir, "workers/w1.pem")], {
      encoding: "utf8",
    });
    assert.match(out, /w1\.pem: OK/);
    // The CRL written by init is one OpenSSL accepts for the same CA.
    execFileSync("openssl", ["verify", "-crl_check", "-CRLfile", join(dir, "crl.pem"), "-CAfile", join(dir, "ca.pem"), join(dir, "workers/w1.pem")]);

    const worker = new X509Certificate(readFileSync(join(dir, "workers/w1.pem")));
    assert.match(worker.subjectAltName ?? "", /URI:spiffe:\/\/lab\/worker\/w1/, "role and id are in the certificate");
    const manager = new X509Certificate(readFileSync(join(dir, "manager.pem")));
    assert.match(manager.subjectAltName ?? "", /URI:spiffe:\/\/lab\/manager\/manager/);
  });

  it("a second init refuses and leaves the CA untouched", async () => {
    const before = readFileSync(join(dir, "ca-key.pem"), "utf8");
    const again = await runCli(["certs", "init", "--dir", dir]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /refusing to overwrite the existing fleet CA/);
    assert.equal(readFileSync(join(dir, "ca-key.pem"), "utf8"), before);
  });

  it("refuses a worker id that is not a DNS label, with a clear message", async () => {
    for (const bad of ["under_score", "-lead", "trail-", "a".repeat(64), "dot.ted"]) {
      const r = await runCli(["certs", "issue", "--dir", dir, "--", bad]);
      assert.equal(r.code, 2, `${bad} refused`);
      assert.match(r.stderr, /is not a valid worker id: it must be a DNS label/);
    }
  });

  it("refuses to replace an existing worker certificate without --force", async () => {
    const r = await runCli(["certs", "issue", "w1", "--dir", dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /already exists.*--force/);
    const forced = await runCli(["certs", "issue", "w1", "--dir", dir, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(statSync(join(dir, "workers/w1-key.pem")).mode & 0o777, 0o600);
  });

  it("revoke puts the worker's certificate on the CRL", async () => {
    const r = await runCli(["certs", "revoke", "w1", "--dir", dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.throws(
      () =>
        execFileSync(
          "openssl",
          ["verify", "-crl_check", "-CRLfile", join(dir, "crl.pem"), "-CAfile", join(dir, "ca.pem"), join(dir, "workers/w1.pem")],
          { stdio: "pipe" },
        ),
      /certificate revoked/,
    );
  });
});
