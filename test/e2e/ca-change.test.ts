import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { makeCerts, ManagerProc, tempDir, type CertSet } from "../helpers/fleet.js";
import { killAll } from "../helpers/processes.js";
import { tlsProbe } from "../helpers/tls-probe.js";

/**
 * The fleet CA is replaced and the manager restarted on its old state directory. A worker certificate of the old
 * CA holds a TLS session ticket from before: it must be refused, as a full handshake would refuse it.
 */
describe("a new fleet CA on the old state directory", () => {
  let oldFleet: CertSet;
  let newFleet: CertSet;
  let stateFile = "";
  let oldSession: Buffer | undefined;
  let oldKeys = "";
  let cleanup: Array<() => Promise<void>> = [];

  before(async () => {
    const a = await tempDir("ca-old");
    const b = await tempDir("ca-new");
    const state = await tempDir("ca-state");
    cleanup = [a.cleanup, b.cleanup, state.cleanup];
    oldFleet = await makeCerts(a.path, ["w1"]);
    newFleet = await makeCerts(b.path, []);
    stateFile = join(state.path, "state.json");
    const first = await ManagerProc.start(oldFleet, ["--state", stateFile]);
    const probe = await tlsProbe(first.port, { ca: oldFleet.ca, ...oldFleet.worker("w1") }, undefined, { anyManager: true });
    assert.equal(probe.endedByManager, false, "under the old CA the worker is let in");
    assert.ok(probe.session, "and holds a session ticket");
    oldSession = probe.session;
    oldKeys = readFileSync(`${stateFile}.ticket-keys`, "utf8");
    first.kill("SIGTERM");
    await first.exited;
  });
  after(async () => {
    killAll();
    for (const c of cleanup) await c();
  });

  it("the ticket keys are discarded, and the old-CA worker's ticket gets it no further than a full handshake", async () => {
    const m = await ManagerProc.start(newFleet, ["--state", stateFile]);
    const probe = await tlsProbe(m.port, { ca: oldFleet.ca, ...oldFleet.worker("w1") }, oldSession, { anyManager: true });
    assert.equal(probe.endedByManager, true, "the old-CA worker is refused");
    assert.equal(probe.reused, false, "the old ticket is not resumed");
    await m.waitFor((l) => /fleet CA changed since the TLS ticket keys were made/.test(String(l.msg)), 2000, "keys discarded");
    const line = await m.waitFor((l) => l.msg === "TLS client refused: certificate not accepted", 2000, "refusal logged");
    // OpenSSL's verdict on a chain to a CA it does not trust (the worker's file carries the old CA too).
    assert.match(String(line.reason), /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/);
    assert.equal(line.resumed, false);
    m.kill("SIGKILL");
    await m.exited;
  });

  it("with the old keys carried over by hand, the resumed session is still judged against the current CA", async () => {
    // The key file names its CA by the SHA-256 of the certificate's DER.
    const newCa = createHash("sha256").update(new X509Certificate(readFileSync(newFleet.ca)).raw).digest("hex");
    const carried = { ...(JSON.parse(oldKeys) as Record<string, unknown>), ca: newCa };
    writeFileSync(`${stateFile}.ticket-keys`, JSON.stringify(carried), { mode: 0o600 });
    const m = await ManagerProc.start(newFleet, ["--state", stateFile]);
    const probe = await tlsProbe(m.port, { ca: oldFleet.ca, ...oldFleet.worker("w1") }, oldSession, { anyManager: true });
    assert.equal(probe.reused, true, "the carried-over keys resume the old session");
    assert.equal(probe.endedByManager, true, "the resumed old-CA worker is refused");
    const line = await m.waitFor((l) => l.msg === "TLS client refused: certificate not accepted", 2000, "refusal logged");
    assert.equal(line.reason, "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    assert.equal(line.resumed, true);
    assert.ok(!m.lines.some((l) => l.msg === "worker connected"), "no session was opened");
    m.kill("SIGKILL");
    await m.exited;
  });
});
