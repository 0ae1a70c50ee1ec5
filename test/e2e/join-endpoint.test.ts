import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as netConnect } from "node:net";
import { connect, type PeerCertificate, type TLSSocket } from "node:tls";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decideRequest } from "../../src/enroll/join-records.js";
import { readJoinFile, updateJoinFile } from "../../src/enroll/token-file.js";
import { newToken, type TokenRecord } from "../../src/enroll/tokens.js";
import { createCsr, keyFingerprint } from "../../src/pki/csr.js";
import { readCertificate } from "../../src/pki/identity.js";
import { labelsFromSubjectAltName } from "../../src/pki/labels-san.js";
import { caPin } from "../../src/pki/pin.js";
import {
  JOIN_PATH,
  JOIN_PROTOCOL,
  JOIN_REFUSAL_STATUS,
  JOIN_REFUSAL_TEXT,
  JOIN_SERVERNAME,
  JoinAnswer,
  parseJoinString,
  type JoinRefusal,
} from "../../src/protocol/join.js";
import { ManagerProc, makeCerts, tempDir, type CertSet } from "../helpers/fleet.js";
import { killAll, runCli } from "../helpers/processes.js";
import { rawClient } from "../helpers/raw-client.js";

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  answer: JoinAnswer | null;
}

/**
 * The manager's enrollment endpoint, from a joining host's side: HTTPS to the manager's port with the join SNI
 * name and no client certificate, one POST each. Every case comes from its own loopback address, so the join
 * rate (2 a minute, a burst of 4) is per case, except in the case about the rate.
 */
describe("the join endpoint", () => {
  let certs: CertSet;
  let manager: ManagerProc;
  let tokensPath: string;
  let cleanup: () => Promise<void> = async () => {};
  let nextAddress = 10;
  const fromNew = () => `127.0.0.${nextAddress++}`;

  const post = (body: unknown, o: { from: string; raw?: string; path?: string; method?: string; servername?: string } ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const payload = o.raw ?? JSON.stringify(body);
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: manager.port,
          localAddress: o.from,
          path: o.path ?? JOIN_PATH,
          method: o.method ?? "POST",
          servername: o.servername ?? JOIN_SERVERNAME,
          rejectUnauthorized: false,
          agent: false,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
          timeout: 30_000,
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => {
            let answer: JoinAnswer | null = null;
            try {
              answer = JoinAnswer.parse(JSON.parse(text));
            } catch {
              answer = null;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, answer });
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });

  /** TLS to the manager with the join name and no certificate, from `from`. */
  const joinSocket = (from: string): TLSSocket =>
    connect({
      socket: netConnect({ host: "127.0.0.1", port: manager.port, localAddress: from }),
      servername: JOIN_SERVERNAME,
      rejectUnauthorized: false,
    });

  const joinRequest = async (o: { token?: { id: string; secret: string }; requestedId: string; csrPem?: string; waitMs?: number }) => {
    const csr = o.csrPem ? { csrPem: o.csrPem, keyPem: "" } : await createCsr({ id: o.requestedId });
    return {
      keyPem: csr.keyPem,
      body: { protocol: JOIN_PROTOCOL, token: o.token, requestedId: o.requestedId, hostname: `${o.requestedId}.example`, csr: csr.csrPem, waitMs: o.waitMs ?? 0 },
    };
  };

  const tokenOf = (record: TokenRecord, secret: string) => ({ id: record.id, secret });
  /** A token written straight into the join file, in states the command line does not make. */
  const writeToken = async (o: Partial<Parameters<typeof newToken>[0]> & { edit?: (t: TokenRecord) => void } = {}) => {
    const made = newToken({ ttlMs: 3_600_000, uses: 1, labels: {}, approve: "auto", replace: false, now: new Date(), ...o });
    o.edit?.(made.record);
    await updateJoinFile(tokensPath, (f) => void f.tokens.push(made.record));
    return tokenOf(made.record, made.secret);
  };
  const createToken = async (args: string[]) => {
    const made = await runCli(["token", "create", "--dir", certs.dir, ...args]);
    assert.equal(made.code, 0, made.stderr);
    const parsed = parseJoinString(made.stdout.trim());
    assert.ok(parsed.ok && parsed.join.token);
    assert.equal(parsed.join.pin, caPin(readFileSync(certs.ca)));
    return parsed.join.token;
  };

  const assertRefused = async (reply: Reply, code: JoinRefusal, from: number, status = JOIN_REFUSAL_STATUS[code]) => {
    assert.equal(reply.answer?.status, "refused", reply.text);
    assert.equal(reply.answer.status === "refused" && reply.answer.code, code, reply.text);
    if (code !== "bad_request") assert.equal(reply.answer.status === "refused" && reply.answer.message, JOIN_REFUSAL_TEXT[code]);
    assert.equal(reply.status, status);
    assert.equal(reply.headers.connection, "close");
    await manager.waitFor((l) => l.msg === "join refused" && l.code === code, 10_000, `join refused ${code}`, from);
  };

  before(async () => {
    const tmp = await tempDir("join");
    cleanup = tmp.cleanup;
    certs = await makeCerts(tmp.path, ["taken"]);
    tokensPath = join(tmp.path, "tokens.json");
    manager = await ManagerProc.start(certs, ["--join-rate", "2", "--max-join-requests", "3", "--cert-lifetime", "2h"]);
  });
  after(async () => {
    killAll();
    await cleanup();
  });

  it("presents its chain up to the CA to the join name, whose key is the pin", async () => {
    const socket = joinSocket(fromNew());
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
    const leaf = socket.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate };
    socket.destroy();
    assert.ok(leaf.issuerCertificate, "the chain holds the CA");
    const ca = new X509Certificate(leaf.issuerCertificate.raw);
    assert.equal(ca.fingerprint256, new X509Certificate(readFileSync(certs.ca)).fingerprint256);
    assert.equal(caPin(ca.toString()), caPin(readFileSync(certs.ca)));
  });

  it("an auto token: the certificate is issued at once, verifies against the CA, holds the request's key, the id and the token's labels", async () => {
    const token = await createToken(["--approve", "auto", "--labels", "zone=eu-1,rack=r7"]);
    const from = manager.lines.length;
    const { body, keyPem } = await joinRequest({ token, requestedId: "joiner" });
    const reply = await post(body, { from: fromNew() });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers.connection, "close");
    const answer = reply.answer;
    assert.ok(answer?.status === "issued", reply.text);
    assert.equal(answer.id, "joiner");
    assert.equal(answer.ca, readFileSync(certs.ca, "utf8"));
    const cert = new X509Certificate(answer.certificate);
    assert.ok(cert.verify(new X509Certificate(readFileSync(certs.ca)).publicKey), "signed by the fleet CA");
    assert.equal(keyFingerprint(cert.publicKey), keyFingerprint(keyPem), "the CSR's key");
    assert.deepEqual(readCertificate(answer.certificate).identity, { fleet: "test", role: "worker", id: "joiner" });
    assert.deepEqual(labelsFromSubjectAltName(cert.subjectAltName), { zone: "eu-1", rack: "r7" });
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.ok(Math.abs(lifetime - 2 * 3_600_000) < 10 * 60_000, `--cert-lifetime 2h (${lifetime} ms)`);
    const joined = await manager.waitFor((l) => l.msg === "host joined", 5000, "host joined", from);
    assert.equal(joined.id, "joiner");
    assert.equal(joined.tokenId, token.id);
    assert.equal(joined.serial, cert.serialNumber.toLowerCase());
    const file = await readJoinFile(tokensPath);
    assert.equal(file.tokens.find((t) => t.id === token.id)?.used, 1, "the use is counted in the file");

    // The same token again: its one use is gone.
    const again = await post((await joinRequest({ token, requestedId: "joiner-2" })).body, { from: fromNew() });
    await assertRefused(again, "exhausted_token", from);
  });

  it("each token refusal, in its own words, and logged with its code", async () => {
    const from = manager.lines.length;
    const good = await writeToken();
    const cases: Array<[JoinRefusal, { id: string; secret: string }]> = [
      ["unknown_token", { id: "zzzzzz", secret: "a".repeat(24) }],
      ["wrong_secret", { id: good.id, secret: "b".repeat(24) }],
      ["expired_token", await writeToken({ now: new Date(Date.now() - 7_200_000) })],
      ["exhausted_token", await writeToken({ edit: (t) => (t.used = 1) })],
      ["revoked_token", await writeToken({ edit: (t) => (t.revokedAt = new Date().toISOString()) })],
    ];
    for (const [code, token] of cases) {
      const reply = await post((await joinRequest({ token, requestedId: "nobody" })).body, { from: fromNew() });
      await assertRefused(reply, code, from);
    }
    const refused = manager.lines.slice(from).filter((l) => l.msg === "join refused");
    assert.ok(refused.every((l) => l.requestedId === "nobody" && typeof l.address === "string"));
    assert.ok(!JSON.stringify(manager.lines.slice(from)).includes("b".repeat(24)), "no secret in the log");
  });

  it("a bad CSR, a taken id, a malformed or oversized body", async () => {
    const from = manager.lines.length;
    const token = await writeToken();
    const badCsr = "-----BEGIN CERTIFICATE REQUEST-----\nQUJDRA==\n-----END CERTIFICATE REQUEST-----\n";
    await assertRefused(await post((await joinRequest({ token, requestedId: "bad", csrPem: badCsr })).body, { from: fromNew() }), "bad_csr", from);
    await assertRefused(await post((await joinRequest({ token, requestedId: "taken" })).body, { from: fromNew() }), "id_taken", from);
    assert.equal((await readJoinFile(tokensPath)).tokens.find((t) => t.id === token.id)?.used, 0, "refusals use nothing up");

    const missing = await post({ protocol: JOIN_PROTOCOL, requestedId: "x", hostname: "x" }, { from: fromNew() });
    await assertRefused(missing, "bad_request", from);
    assert.match(missing.answer?.status === "refused" ? missing.answer.message : "", /csr/, "names the field");
    const notJson = await post(null, { from: fromNew(), raw: "{nope" });
    await assertRefused(notJson, "bad_request", from);
    const bad = await post({ ...(await joinRequest({ requestedId: "ok" })).body, requestedId: "Not_A_Label" }, { from: fromNew() });
    await assertRefused(bad, "bad_request", from);
    assert.ok(!bad.text.includes("Not_A_Label"), "the value is not echoed");
    const huge = await post(null, { from: fromNew(), raw: JSON.stringify({ pad: "x".repeat(20_000) }) });
    await assertRefused(huge, "bad_request", from, 413);
  });

  it("a manual token: pending; approved in the file, the waiting long poll gets the certificate", async () => {
    const token = await createToken(["--approve", "manual", "--labels", "role=db"]);
    const address = fromNew();
    const from = manager.lines.length;
    const { body, keyPem } = await joinRequest({ token, requestedId: "manual-1", waitMs: 20_000 });
    const t0 = performance.now();
    const waiting = post(body, { from: address });
    // Logged as the long poll starts to wait; then the operator approves on the command line.
    const created = await manager.waitFor((l) => l.msg === "join request waiting for approval" && l.requestedId === "manual-1", 5000, "request made", from);
    const requestId = String(created.requestId);
    const listed = await runCli(["token", "requests", "--dir", certs.dir, "--json"]);
    assert.match(listed.stdout, new RegExp(requestId));
    const approved = await runCli(["token", "approve", requestId, "--dir", certs.dir]);
    assert.equal(approved.code, 0, approved.stderr);
    const reply = await waiting;
    assert.ok(performance.now() - t0 < 15_000, "answered on the decision, not at the end of the wait");
    assert.ok(reply.answer?.status === "issued", reply.text);
    assert.equal(keyFingerprint(new X509Certificate(reply.answer.certificate).publicKey), keyFingerprint(keyPem));
    assert.deepEqual(labelsFromSubjectAltName(new X509Certificate(reply.answer.certificate).subjectAltName), { role: "db" });
    const decided = await manager.waitFor((l) => l.msg === "join decided", 5000, "join decided", from);
    assert.equal(decided.requestId, requestId);
    assert.equal(decided.decision, "approved");
    const file = await readJoinFile(tokensPath);
    assert.equal(file.tokens.find((t) => t.id === token.id)?.used, 1, "a manual token's use counts on approval");
    assert.equal(file.requests.find((r) => r.requestId === requestId)?.serialNumber, new X509Certificate(reply.answer.certificate).serialNumber.toLowerCase());
  });

  it("no token: pending; denied in the file, the waiting host is told denied, and stays denied", async () => {
    const address = fromNew();
    const from = manager.lines.length;
    const { body } = await joinRequest({ requestedId: "stranger" });
    const waiting = post({ ...body, waitMs: 20_000 }, { from: address });
    const created = await manager.waitFor((l) => l.msg === "join request waiting for approval" && l.requestedId === "stranger", 5000, "request made", from);
    await updateJoinFile(tokensPath, (f) => void decideRequest(f, { requestId: String(created.requestId), decision: "denied", by: "cli:test", now: new Date(), path: tokensPath }));
    await assertRefused(await waiting, "denied", from);
    await assertRefused(await post(body, { from: address }), "denied", from);
  });

  it("too many pending requests: refused beyond --max-join-requests", async () => {
    const from = manager.lines.length;
    const pending = (await readJoinFile(tokensPath)).requests.filter((r) => r.status === "pending").length;
    for (let i = pending; i < 3; i++) {
      const reply = await post((await joinRequest({ requestedId: `queued-${i}` })).body, { from: fromNew() });
      assert.equal(reply.answer?.status, "pending", reply.text);
      assert.equal(reply.status, 202);
    }
    await assertRefused(await post((await joinRequest({ requestedId: "one-too-many" })).body, { from: fromNew() }), "too_many_pending", from);
  });

  it("one address over its join rate is refused with a time to retry", async () => {
    const from = manager.lines.length;
    const address = fromNew();
    const replies: Reply[] = [];
    for (let i = 0; i < 5; i++) replies.push(await post(null, { from: address, raw: "{}" }));
    assert.deepEqual(replies.slice(0, 4).map((r) => r.answer?.status === "refused" && r.answer.code), Array(4).fill("bad_request"));
    await assertRefused(replies[4]!, "rate_limited", from);
    const retry = replies[4]!.answer?.status === "refused" ? replies[4]!.answer.retryAfterMs : undefined;
    assert.ok(retry !== undefined && retry > 0 && retry <= 30_000, `retryAfterMs ${retry}`);
  });

  it("a join connection may not upgrade nor reach other paths", async () => {
    const from = manager.lines.length;
    const other = await post(null, { from: fromNew(), raw: "", path: "/worker", method: "GET" });
    assert.equal(other.status, 404);
    const upgrade = await new Promise<string>((resolve, reject) => {
      const socket = joinSocket(fromNew());
      let text = "";
      socket.on("secureConnect", () =>
        socket.write("GET /worker HTTP/1.1\r\nhost: manager\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
      );
      socket.on("data", (d: Buffer) => (text += d.toString()));
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
    });
    assert.match(upgrade, /^HTTP\/1\.1 403/);
    await manager.waitFor((l) => /upgrade on a join connection/.test(String(l.msg)), 5000, "upgrade refused", from);
  });

  it("no client certificate and no join name: refused at the handshake as before", async () => {
    const from = manager.lines.length;
    const outcome = await rawClient(manager.url, { ca: certs.ca }).done;
    assert.equal(outcome.opened, false);
    const refusal = await manager.waitFor((l) => /TLS client refused/.test(String(l.msg)), 5000, "TLS refusal logged", from);
    assert.equal(refusal.reason, "no client certificate");
  });
});
