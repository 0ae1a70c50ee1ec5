import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { issueCertificate } from "../../src/pki/generate.js";
import { ManagerProc, startWorker, useCerts, type CertSet } from "../helpers/fleet.js";
import { sleep } from "../helpers/processes.js";
import { rawClient } from "../helpers/raw-client.js";

const DAY = 86_400_000;

/** Certificates from the fleet CA that are deliberately not valid now, written where the fixture expects them. */
async function issueAt(certs: CertSet, role: "worker" | "manager", id: string, notBefore: number, notAfter: number) {
  const ca = { certPem: readFileSync(certs.ca, "utf8"), keyPem: readFileSync(join(certs.dir, "ca-key.pem"), "utf8") };
  const issued = await issueCertificate({
    ca,
    identity: { fleet: "test", role, id },
    days: 1,
    notBefore: new Date(Date.now() + notBefore),
    notAfter: new Date(Date.now() + notAfter),
  });
  const paths = role === "worker" ? certs.worker(id) : { cert: join(certs.dir, "expired-manager.pem"), key: join(certs.dir, "expired-manager-key.pem") };
  writeFileSync(paths.cert, issued.certPem);
  writeFileSync(paths.key, issued.keyPem, { mode: 0o600 });
  return paths;
}

describe("certificate validity", () => {
  const fx = useCerts("validity", ["ok1"], { before, after });
  let manager: ManagerProc;
  before(async () => {
    await issueAt(fx.certs, "worker", "expired", -10 * DAY, -1 * DAY);
    await issueAt(fx.certs, "worker", "future", 1 * DAY, 10 * DAY);
    await issueAt(fx.certs, "worker", "soon", -1 * DAY, 5 * DAY);
    manager = await ManagerProc.start(fx.certs);
    startWorker(fx.certs, "ok1", manager.url);
    await manager.waitForState("ok1", "healthy", 5000);
  });

  it("an expired and a not-yet-valid client certificate are refused, with the reason in the manager's log", async () => {
    for (const [id, reason] of [["expired", "CERT_HAS_EXPIRED"], ["future", "CERT_NOT_YET_VALID"]] as const) {
      const from = manager.lines.length;
      const outcome = await rawClient(manager.url, { ca: fx.certs.ca, ...fx.certs.worker(id) }).done;
      assert.equal(outcome.opened, false, id);
      const line = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 2000, `${id} refused`, from);
      assert.equal(line.reason, reason);
      assert.match(String(line.subject), new RegExp(`CN=${id}`));
    }
  });

  it("a worker whose own certificate expired says so and does not hammer the manager", async () => {
    const from = manager.lines.length;
    const w = startWorker(fx.certs, "expired", manager.url);
    const said = await w.waitFor((l) => /not connecting: this worker's certificate expired on/.test(String(l.msg)), 5000, "says so");
    assert.equal(said.retryInMs, 30_000);
    await sleep(3000);
    assert.ok(w.running, "it waits rather than exiting: a renewed certificate is picked up");
    assert.ok(!manager.lines.slice(from).some((l) => /TLS client refused/.test(String(l.msg))), "no attempts reached the manager");
    w.kill("SIGKILL");
  });

  it("a worker whose certificate expires within 14 days is degraded with that reason", async () => {
    startWorker(fx.certs, "soon", manager.url);
    const t = await manager.waitForState("soon", "degraded", 5000);
    assert.equal(t.reasons[0]!.code, "cert_expiring");
    assert.match(t.reasons[0]!.message, /certificate expires in 5d/);
  });

  it("a manager whose certificate expired is refused by workers, which log why", async () => {
    const expired = await issueAt(fx.certs, "manager", "manager", -10 * DAY, -1 * DAY);
    const stale = await ManagerProc.start({ ...fx.certs, managerCert: expired.cert, managerKey: expired.key });
    assert.ok(stale.lines.some((l) => l.msg === "this manager's certificate is not valid now; workers will refuse it"));
    const w = startWorker(fx.certs, "ok1", stale.url);
    const seen = await w.waitFor((l) => l.kind === "manager_rejected", 5000, "worker refuses the manager");
    assert.match(String(seen.msg), /CERT_HAS_EXPIRED/);
    w.kill("SIGKILL");
    await stale.stop();
  });
});
