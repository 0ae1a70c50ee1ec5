import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../../src/core/clock.js";
import {
  answerFor,
  approverText,
  awaitingIssue,
  decisionsBetween,
  dropForgotten,
  FORGET_EXPIRED_AFTER_MS,
  newRequestRecord,
  pendingCount,
  PENDING_RETRY_MS,
  placeNew,
  REQUEST_TTL_MS,
  requestView,
  standingOf,
} from "../../src/enroll/decide.js";
import { decideRequest } from "../../src/enroll/join-records.js";
import type { JoinFile, RequestRecord } from "../../src/enroll/token-file.js";
import { newToken, type TokenRecord } from "../../src/enroll/tokens.js";
import { SessionRate } from "../../src/manager/session-rate.js";

const CA = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n";
const fp = (c: string) => c.repeat(64);

function fixture() {
  const clock = new FakeClock();
  const now = () => new Date(clock.wall());
  const file: JoinFile = { version: 1, tokens: [], requests: [] };
  const token = (approve: TokenRecord["approve"], labels = {}) => {
    const { record } = newToken({ ttlMs: 3_600_000, uses: 1, labels, approve, replace: false, now: now() });
    file.tokens.push(record);
    return record;
  };
  let n = 0;
  const request = (key: string, token: TokenRecord | null = null): RequestRecord => {
    const r = newRequestRecord({
      requestId: `req${String(n++).padStart(5, "0")}`,
      requestedId: `host-${n}`,
      hostname: `host-${n}.example`,
      address: "192.0.2.1",
      keyFingerprint: fp(key),
      csr: "-----BEGIN CERTIFICATE REQUEST-----\nQUJD\n-----END CERTIFICATE REQUEST-----\n",
      token,
      now: now(),
    });
    file.requests.push(r);
    return r;
  };
  const decide = (r: RequestRecord, decision: "approved" | "denied") =>
    decideRequest(file, { requestId: r.requestId, decision, by: "cli:root", now: now(), path: "tokens.json" });
  return { clock, now, file, token, request, decide };
}

describe("join decisions (pure)", () => {
  it("an auto token issues at once; a manual token or none queues, until the cap is reached", () => {
    const { file, now, token, request } = fixture();
    assert.equal(placeNew(file, token("auto"), now(), 1), "issue");
    assert.equal(placeNew(file, token("manual"), now(), 1), "queue");
    assert.equal(placeNew(file, null, now(), 1), "queue");
    request("a");
    assert.equal(pendingCount(file, now()), 1);
    assert.equal(placeNew(file, null, now(), 1), "too_many_pending");
    assert.equal(placeNew(file, token("auto"), now(), 1), "issue", "an auto token does not wait, so the cap is not its business");
  });

  it("a new request carries its token's labels and id, and expires in an hour", () => {
    const { now, token, request } = fixture();
    const t = token("manual", { zone: "eu-1" });
    const r = request("a", t);
    assert.deepEqual(r.labels, { zone: "eu-1" });
    assert.equal(r.tokenId, t.id);
    assert.equal(Date.parse(r.expiresAt) - now().getTime(), REQUEST_TTL_MS);
    assert.deepEqual(request("b").labels, {}, "no token: no labels");
  });

  it("the same key finds its request: pending, then expired (request_expired) until forgotten, then none", () => {
    const { clock, now, file, request } = fixture();
    const r = request("a");
    const s = standingOf(file, fp("a"), now());
    assert.equal(s.kind, "pending");
    assert.deepEqual(answerFor(s as Exclude<typeof s, { kind: "none" }>, { caPem: CA, now: now(), waited: true }), { status: "pending", requestId: r.requestId, retryAfterMs: 0 });
    assert.equal((answerFor(s as never, { caPem: CA, now: now(), waited: false }) as { retryAfterMs: number }).retryAfterMs, PENDING_RETRY_MS);
    assert.equal(standingOf(file, fp("b"), now()).kind, "none", "another key has none");

    clock.advance(REQUEST_TTL_MS);
    const expired = standingOf(file, fp("a"), now());
    assert.equal(expired.kind, "expired");
    const answer = answerFor(expired as never, { caPem: CA, now: now(), waited: false });
    assert.equal(answer?.status === "refused" && answer.code, "request_expired");
    assert.equal(answer?.status === "refused" && answer.retryAfterMs, FORGET_EXPIRED_AFTER_MS);
    assert.equal(pendingCount(file, now()), 0, "an expired request no longer counts against the cap");
    assert.deepEqual(requestView(r, now()).ageMs, REQUEST_TTL_MS);

    clock.advance(FORGET_EXPIRED_AFTER_MS);
    assert.equal(standingOf(file, fp("a"), now()).kind, "none");
    assert.equal(dropForgotten(file, now()), 1);
    assert.equal(file.requests.length, 0);
  });

  it("a denied key stays denied until its request's expiry, then is forgotten", () => {
    const { clock, now, file, request, decide } = fixture();
    const r = request("a");
    clock.advance(10 * 60_000);
    decide(r, "denied");
    const s = standingOf(file, fp("a"), now());
    assert.equal(s.kind, "denied");
    const answer = answerFor(s as never, { caPem: CA, now: now(), waited: true });
    assert.equal(answer?.status === "refused" && answer.code, "denied");
    assert.equal(answer?.status === "refused" && answer.retryAfterMs, 50 * 60_000, "told when asking again makes sense");
    clock.advance(50 * 60_000 - 1);
    assert.equal(standingOf(file, fp("a"), now()).kind, "denied");
    clock.advance(1);
    assert.equal(standingOf(file, fp("a"), now()).kind, "none");
    assert.equal(dropForgotten(file, now()), 1);
  });

  it("an approved request waits for its certificate, then answers it for an hour after the decision", () => {
    const { clock, now, file, request, decide } = fixture();
    const r = request("a");
    clock.advance(59 * 60_000);
    decide(r, "approved");
    assert.deepEqual(awaitingIssue(file, now()).map((x) => x.requestId), [r.requestId]);
    const s = standingOf(file, fp("a"), now());
    assert.equal(s.kind, "approved");
    assert.equal(answerFor(s as never, { caPem: CA, now: now(), waited: true }), null, "no answer before the certificate is issued");
    r.certificate = CERT;
    r.notAfter = new Date(now().getTime() + 7 * 86_400_000).toISOString();
    assert.deepEqual(awaitingIssue(file, now()), []);
    assert.deepEqual(answerFor(standingOf(file, fp("a"), now()) as never, { caPem: CA, now: now(), waited: true }), {
      status: "issued",
      id: r.requestedId,
      certificate: CERT,
      ca: CA,
      notAfter: r.notAfter,
    });
    clock.advance(REQUEST_TTL_MS - 1);
    assert.equal(standingOf(file, fp("a"), now()).kind, "approved", "past the request's own expiry, an hour from the decision");
    clock.advance(1);
    assert.equal(standingOf(file, fp("a"), now()).kind, "none");
  });

  it("a key that asks again after its request was forgotten finds its newest request", () => {
    const { clock, now, file, request, decide } = fixture();
    decide(request("a"), "denied");
    clock.advance(REQUEST_TTL_MS);
    const second = request("a");
    const s = standingOf(file, fp("a"), now());
    assert.equal(s.kind === "pending" && s.request.requestId, second.requestId);
  });

  it("decisions between two readings of the file: only the requests whose status changed to a decision", () => {
    const { file, request, decide } = fixture();
    const a = request("a");
    const b = request("b");
    request("c");
    const before = structuredClone(file);
    decide(a, "approved");
    decide(b, "denied");
    assert.deepEqual(decisionsBetween(before, file).map((r) => [r.requestId, r.status]), [
      [a.requestId, "approved"],
      [b.requestId, "denied"],
    ]);
    assert.deepEqual(decisionsBetween(structuredClone(file), file), [], "nothing changed");
  });

  it("the approver as the file and the log record it", () => {
    assert.equal(approverText({ via: "mcp", name: "claude-desktop", version: "1.2.3" }), "mcp:claude-desktop/1.2.3");
    assert.equal(approverText({ via: "cli", name: "root" }), "cli:root");
  });
});

describe("join rate per address (SessionRate)", () => {
  it("a burst of twice the rate, then one per refill; says how long until the next", () => {
    let t = 0;
    const rate = new SessionRate(10, 20, 100, () => t); // one every 6 s
    for (let i = 0; i < 20; i++) assert.equal(rate.take("192.0.2.1"), true);
    assert.equal(rate.take("192.0.2.1"), false);
    assert.equal(rate.retryAfterMs("192.0.2.1"), 6000);
    assert.equal(rate.retryAfterMs("192.0.2.2"), 0, "an address never seen has a full bucket");
    t += 4000;
    assert.ok(Math.abs(rate.retryAfterMs("192.0.2.1") - 2000) <= 1, "rounded up, never early");
    t += 2000;
    assert.equal(rate.retryAfterMs("192.0.2.1"), 0);
    assert.equal(rate.take("192.0.2.1"), true);
  });
});

describe("labels at hello", () => {
  it("the certificate's labels override the worker's own of the same key; none leaves the worker's as they are", async () => {
    const { mergeLabels } = await import("../../src/manager/session.js");
    const own = { zone: "self-said", os: "linux" };
    assert.deepEqual(mergeLabels(own, { zone: "eu-1", rack: "r7" }), { zone: "eu-1", os: "linux", rack: "r7" });
    assert.equal(mergeLabels(own, {}), own);
  });
});
