import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../../src/core/clock.js";
import { FORGET_EXPIRED_AFTER_MS, REQUEST_TTL_MS } from "../../src/enroll/decide.js";
import { loadIssuer, type Issuer } from "../../src/enroll/issuer.js";
import { createEnrollmentService, type EnrollmentService } from "../../src/enroll/service.js";
import { readJoinFile, updateJoinFile } from "../../src/enroll/token-file.js";
import { newToken } from "../../src/enroll/tokens.js";
import { isFleetError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { createCsr, keyFingerprint } from "../../src/pki/csr.js";
import { readCrlEntries } from "../../src/pki/generate.js";
import { readFile } from "node:fs/promises";
import { certLayout } from "../../src/pki/layout.js";
import { initFleet } from "../../src/pki/store.js";
import { JOIN_PROTOCOL, type JoinAnswer, type JoinRequest } from "../../src/protocol/join.js";

const DAY = 86_400_000;
const MCP = { via: "mcp" as const, name: "test-client", version: "1.0.0" };

/**
 * The enrollment service in this process, on a real join file and a real CA (the issuer writes inventory.json
 * and crl.pem): the decisions an MCP client makes, the long poll, replacement, expiry on a fake clock.
 */
describe("the enrollment service", () => {
  let dir: string;
  let tokensPath: string;
  let issuer: Issuer;
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ name: "enroll-test", level: "info", destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  const clock = new FakeClock(Date.now());
  let service: EnrollmentService;
  const revoked: string[][] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "enroll-"));
    await initFleet({ dir, fleet: "lab" });
    const files = certLayout(dir);
    tokensPath = join(dir, "tokens.json");
    const loaded = await loadIssuer({ caPath: files.ca, caKeyPath: files.caKey, fleet: "lab", log });
    assert.ok(loaded);
    issuer = loaded;
    service = createEnrollmentService({ tokensPath, issuer, lifetimeMs: DAY, maxPending: 10, clock, log, onRevoked: (s) => void revoked.push(s) });
    await service.start();
  });
  after(() => {
    service.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const request = async (o: { requestedId: string; token?: { id: string; secret: string }; keyPem?: string; waitMs?: number }): Promise<{ body: JoinRequest; keyPem: string }> => {
    const csr = await createCsr({ id: o.requestedId, keyPem: o.keyPem });
    return { keyPem: csr.keyPem, body: { protocol: JOIN_PROTOCOL, token: o.token, requestedId: o.requestedId, hostname: `${o.requestedId}.lan`, csr: csr.csrPem, waitMs: o.waitMs ?? 0 } };
  };
  const ask = (body: JoinRequest, signal = new AbortController().signal) => service.join(body, "192.0.2.7", signal);
  const token = async (o: { approve: "auto" | "manual"; replace?: boolean; uses?: number }) => {
    const made = newToken({ ttlMs: 3_600_000, uses: o.uses ?? 1, labels: {}, approve: o.approve, replace: o.replace ?? false, now: new Date(clock.wall()) });
    await updateJoinFile(tokensPath, (f) => void f.tokens.push(made.record));
    return { id: made.record.id, secret: made.secret };
  };
  const pendingId = (a: JoinAnswer) => {
    assert.equal(a.status, "pending", JSON.stringify(a));
    return (a as { requestId: string }).requestId;
  };

  it("a request without a token is listed; approved over MCP, the waiting host gets its certificate, and the decision is logged", async () => {
    const { body, keyPem } = await request({ requestedId: "db-1" });
    const requestId = pendingId(await ask(body));
    const [view] = service.listRequests();
    assert.equal(view?.requestId, requestId);
    assert.equal(view.keyFingerprint, keyFingerprint(keyPem));
    assert.equal(view.address, "192.0.2.7");

    const waiting = ask({ ...body, waitMs: 20_000 });
    const decided = await service.approve(requestId, MCP);
    assert.equal(decided.workerId, "db-1");
    const answer = await waiting;
    assert.ok(answer.status === "issued");
    assert.equal(new X509Certificate(answer.certificate).serialNumber.toLowerCase(), decided.serialNumber);
    assert.deepEqual(service.listRequests(), [], "decided: no longer listed");
    const audit = lines.filter((l) => l.msg === "join decided");
    assert.equal(audit.length, 1, "logged once, though the watcher saw the file change too");
    assert.deepEqual([audit[0]!.requestId, audit[0]!.decision, audit[0]!.by], [requestId, "approved", "mcp:test-client/1.0.0"]);

    const again = await ask(body);
    assert.equal(again.status === "issued" && again.certificate, answer.certificate, "asking again with the same key: the same certificate");
    await assert.rejects(service.approve(requestId, MCP), (err) => isFleetError(err, "E_UNKNOWN_REQUEST"));
    await assert.rejects(service.deny("nosuchid", MCP), (err) => isFleetError(err, "E_UNKNOWN_REQUEST"));
  });

  it("denied over MCP: the host is told at once, and again when it asks", async () => {
    const { body } = await request({ requestedId: "odd-1" });
    const requestId = pendingId(await ask(body));
    const waiting = ask({ ...body, waitMs: 20_000 });
    await service.deny(requestId, MCP);
    const answer = await waiting;
    assert.equal(answer.status === "refused" && answer.code, "denied");
    assert.equal((await ask(body)).status === "refused", true);
  });

  it("a host that goes away ends its wait", async () => {
    const { body } = await request({ requestedId: "gone-1" });
    pendingId(await ask(body));
    const aborted = new AbortController();
    const t0 = performance.now();
    const waiting = ask({ ...body, waitMs: 20_000 }, aborted.signal);
    aborted.abort();
    assert.equal((await waiting).status, "pending");
    assert.ok(performance.now() - t0 < 5000);
  });

  it("a replace token takes an id another key holds, and that key's certificate is revoked", async () => {
    const first = await ask((await request({ requestedId: "box", token: await token({ approve: "auto" }) })).body);
    assert.ok(first.status === "issued");
    const oldSerial = new X509Certificate(first.certificate).serialNumber.toLowerCase();
    const plain = await ask((await request({ requestedId: "box", token: await token({ approve: "auto" }) })).body);
    assert.equal(plain.status === "refused" && plain.code, "id_taken");
    const replaced = await ask((await request({ requestedId: "box", token: await token({ approve: "auto", replace: true }) })).body);
    assert.ok(replaced.status === "issued", JSON.stringify(replaced));
    assert.deepEqual(revoked.at(-1), [oldSerial]);
    const crl = readCrlEntries(await readFile(certLayout(dir).crl, "utf8"));
    assert.ok(crl.some((e) => e.serialNumber === oldSerial));
  });

  it("an auto token counts its use in the file; the same key re-joins with a fresh token", async () => {
    const t = await token({ approve: "auto", uses: 2 });
    const { body, keyPem } = await request({ requestedId: "rejoin", token: t });
    assert.equal((await ask(body)).status, "issued");
    assert.equal((await readJoinFile(tokensPath)).tokens.find((x) => x.id === t.id)?.used, 1);
    const again = await ask((await request({ requestedId: "rejoin", token: t, keyPem })).body);
    assert.equal(again.status, "issued", "the id is held by this same key");
  });

  it("a pending request expires after an hour: request_expired, then forgotten and asked anew", async () => {
    const { body } = await request({ requestedId: "late-1" });
    const first = pendingId(await ask(body));
    clock.advance(REQUEST_TTL_MS);
    const expired = await ask(body);
    assert.equal(expired.status === "refused" && expired.code, "request_expired");
    assert.ok(!service.listRequests().some((r) => r.requestId === first));
    await assert.rejects(service.approve(first, MCP), (err) => isFleetError(err, "E_UNKNOWN_REQUEST"));
    clock.advance(FORGET_EXPIRED_AFTER_MS);
    assert.notEqual(pendingId(await ask(body)), first);
  });

  it("without an issuer, every join is refused enrollment_disabled and there is nothing to decide", async () => {
    const off = createEnrollmentService({ tokensPath, issuer: null, lifetimeMs: DAY, log });
    await off.start();
    assert.equal(off.enabled, false);
    const answer = await off.join((await request({ requestedId: "x" })).body, null, new AbortController().signal);
    assert.equal(answer.status === "refused" && answer.code, "enrollment_disabled");
    await assert.rejects(off.approve("abcdefgh", MCP), (err) => isFleetError(err, "E_UNKNOWN_REQUEST"));
    off.stop();
  });
});
