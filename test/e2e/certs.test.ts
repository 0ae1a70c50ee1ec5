import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { copyFileSync, readFileSync, rmSync, statSync } from "node:fs";
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

describe("mcp-fleet certs: the inventory, renewals and CRL numbers", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ path: dir, cleanup } = await tempDir("inventory")));
  after(() => cleanup());
  const crlNumber = () => execFileSync("openssl", ["crl", "-in", join(dir, "crl.pem"), "-noout", "-crlnumber"], { encoding: "utf8" }).trim();
  const revokedByCrl = (cert: string) => {
    const r = spawnSync("openssl", ["verify", "-crl_check", "-CRLfile", join(dir, "crl.pem"), "-CAfile", join(dir, "ca.pem"), cert], { encoding: "utf8" });
    return /certificate revoked/.test(r.stdout + r.stderr);
  };

  it("revoke reaches the certificate a renewal replaced, and every CRL carries a higher number", async () => {
    for (const args of [["init", "--fleet", "inv"], ["issue", "w1"], ["issue", "w2"]]) {
      const r = await runCli(["certs", ...args, "--dir", dir]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(crlNumber(), "crlNumber=0x01");
    assert.equal(statSync(join(dir, "inventory.json")).mode & 0o777, 0o644, "no secret in it");
    const old = join(dir, "w1-old.pem");
    copyFileSync(join(dir, "workers/w1.pem"), old);
    const renewed = await runCli(["certs", "issue", "w1", "--force", "--dir", dir]);
    assert.equal(renewed.code, 0, renewed.stderr);

    const r = await runCli(["certs", "revoke", "w1", "--dir", dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(revokedByCrl(old), "the certificate replaced by issue --force is on the CRL");
    assert.ok(revokedByCrl(join(dir, "workers/w1.pem")), "and so is the current one");
    assert.ok(!revokedByCrl(join(dir, "workers/w2.pem")), "another worker's is not");
    assert.equal(crlNumber(), "crlNumber=0x02");

    const again = await runCli(["certs", "revoke", "w1", "--dir", dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing left to revoke; already revoked: serials/);
    assert.equal(crlNumber(), "crlNumber=0x03", "a rewritten CRL is a newer CRL");
    // Even with crl.pem lost, the next CRL is numbered above every earlier one (the inventory remembers).
    rmSync(join(dir, "crl.pem"));
    assert.equal((await runCli(["certs", "revoke", "w2", "--dir", dir])).code, 0);
    assert.equal(crlNumber(), "crlNumber=0x04");
    assert.ok(revokedByCrl(old), "and it still lists everything revoked before");
  });

  it("certs list shows every certificate issued, as a table and as JSON", async () => {
    const json = await runCli(["certs", "list", "--dir", dir, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as Array<{ id: string; role: string; serialNumber: string; status: string; current: boolean; notAfter: string }>;
    assert.deepEqual(
      list.map((c) => [c.id, c.role, c.status, c.current]),
      [
        ["manager", "manager", "valid", true],
        ["w1", "worker", "revoked", false],
        ["w2", "worker", "revoked", true],
        ["w1", "worker", "revoked", true],
      ],
    );
    const table = await runCli(["certs", "list", "--dir", dir]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split("\n");
    assert.match(lines[0]!, /^ID\s+ROLE\s+SERIAL\s+NOT AFTER\s+STATUS\s+CURRENT$/);
    assert.equal(lines.length, 1 + list.length);
    for (const c of list) assert.ok(lines.some((l) => l.includes(c.serialNumber) && l.startsWith(c.id)), c.serialNumber);
  });
});
