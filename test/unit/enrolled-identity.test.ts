import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { issueCertificate } from "../../src/pki/generate.js";
import { initFleet, issueWorker } from "../../src/pki/store.js";
import {
  enrolledPaths,
  loadEnrolledIdentity,
  readPendingKey,
  saveEnrolledIdentity,
  writePendingKey,
} from "../../src/worker/join/enrolled-identity.js";
import { startPlan, workerIdFromHostname } from "../../src/worker/join/start-enrolled.js";
import { tempDir } from "../helpers/fleet.js";

const DAY = 86_400_000;
const read = (p: string) => readFileSync(p, "utf8");
const mode = (p: string) => statSync(p).mode & 0o777;

describe("enrolled identity in the state dir", () => {
  let dir = "";
  let other = "";
  const cleanups: Array<() => Promise<void>> = [];
  const ca = () => read(join(dir, "ca.pem"));
  const worker = (id: string) => ({ certPem: read(join(dir, "workers", `${id}.pem`)), keyPem: read(join(dir, "workers", `${id}-key.pem`)) });

  before(async () => {
    const a = await tempDir("enrolled-fleet");
    const b = await tempDir("enrolled-other");
    cleanups.push(a.cleanup, b.cleanup);
    dir = a.path;
    other = b.path;
    await initFleet({ dir, fleet: "test" });
    await initFleet({ dir: other, fleet: "test" });
    await issueWorker({ dir, id: "w1" });
    await issueWorker({ dir, id: "w2" });
    await issueWorker({ dir: other, id: "w1" });
  });
  after(async () => {
    for (const c of cleanups) await c();
  });

  it("round trip: saved into a new 0700 dir, key 0600, loaded as valid with its id", () => {
    const paths = enrolledPaths(join(dir, "state", "new"));
    writePendingKey(paths, worker("w1").keyPem);
    assert.equal(mode(paths.dir), 0o700);
    assert.equal(mode(paths.pendingKey), 0o600);
    assert.equal(readPendingKey(paths), worker("w1").keyPem);
    saveEnrolledIdentity(paths, { caPem: ca(), ...worker("w1") });
    assert.equal(mode(paths.key), 0o600);
    assert.equal(mode(paths.cert), 0o644);
    assert.equal(mode(paths.ca), 0o644);
    assert.equal(existsSync(paths.pendingKey), false, "the pending key is gone once its certificate is kept");
    const state = loadEnrolledIdentity(paths);
    assert.equal(state.status, "valid");
    assert.ok(state.status === "valid" && state.material.self.identity.id === "w1");
    // A second save (a renewal) replaces key and certificate and keeps the CA.
    saveEnrolledIdentity(paths, worker("w2"));
    const again = loadEnrolledIdentity(paths);
    assert.ok(again.status === "valid" && again.material.self.identity.id === "w2");
    assert.equal(mode(paths.key), 0o600);
  });

  it("nothing there: none; a file missing: unusable", () => {
    const paths = enrolledPaths(join(dir, "state", "empty"));
    assert.deepEqual(loadEnrolledIdentity(paths), { status: "none" });
    saveEnrolledIdentity(paths, { caPem: ca(), ...worker("w1") });
    writeFileSync(paths.cert, "");
    const state = loadEnrolledIdentity(paths);
    assert.equal(state.status, "unusable");
  });

  it("an expired certificate is told apart (it expired while the host was away)", async () => {
    const issued = await issueCertificate({
      ca: { certPem: ca(), keyPem: read(join(dir, "ca-key.pem")) },
      identity: { fleet: "test", role: "worker", id: "old" },
      days: 1,
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const paths = enrolledPaths(join(dir, "state", "expired"));
    saveEnrolledIdentity(paths, { caPem: ca(), certPem: issued.certPem, keyPem: issued.keyPem });
    const state = loadEnrolledIdentity(paths);
    assert.equal(state.status, "expired");
    assert.ok(state.status === "expired" && state.material.self.notAfter.getTime() < Date.now());
    assert.equal(loadEnrolledIdentity(paths, new Date(Date.now() - 5 * DAY)).status, "valid");
  });

  it("a key that is not the certificate's, or a certificate of another CA, is unusable", () => {
    const mismatched = enrolledPaths(join(dir, "state", "mismatched"));
    saveEnrolledIdentity(mismatched, { caPem: ca(), certPem: worker("w1").certPem, keyPem: worker("w2").keyPem });
    const m = loadEnrolledIdentity(mismatched);
    assert.equal(m.status, "unusable");
    const foreign = enrolledPaths(join(dir, "state", "foreign"));
    saveEnrolledIdentity(foreign, { caPem: ca(), certPem: read(join(other, "workers", "w1.pem")), keyPem: read(join(other, "workers", "w1-key.pem")) });
    const f = loadEnrolledIdentity(foreign);
    assert.ok(f.status === "unusable" && /not issued by the CA/.test(f.reason), JSON.stringify(f));
  });
});

describe("what a worker with a state dir does at start", () => {
  const material = {} as never;
  it("a usable identity wins over a join string; an expired one is replaced only with one", () => {
    assert.equal(startPlan({ status: "valid", material }, "/s", true).action, "start");
    assert.equal(startPlan({ status: "expired", material }, "/s", true).action, "join");
    assert.equal(startPlan({ status: "expired", material }, "/s", false).action, "start");
    assert.equal(startPlan({ status: "none" }, "/s", true).action, "join");
    assert.equal(startPlan({ status: "unusable", reason: "x" }, "/s", true).action, "join");
    const none = startPlan({ status: "none" }, "/s", false);
    assert.ok(none.action === "fail" && none.error.code === "E_CONFIG");
    const bad = startPlan({ status: "unusable", reason: "key mismatch" }, "/s", false);
    assert.ok(bad.action === "fail" && /join again: mcp-fleet worker --join/.test(bad.error.message));
  });

  it("the default id is the host name's first label, made a DNS label", () => {
    assert.equal(workerIdFromHostname("Web01.example.com"), "web01");
    assert.equal(workerIdFromHostname("web_01"), "web-01");
    assert.equal(workerIdFromHostname("-db-.lan"), "db");
    assert.equal(workerIdFromHostname("x".repeat(80)), "x".repeat(63));
    assert.equal(workerIdFromHostname("___"), "worker");
    assert.equal(workerIdFromHostname(""), "worker");
  });
});
