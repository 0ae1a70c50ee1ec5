import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CloseCode, closeCodeName, closeReason, describeCloseCode, PERMANENT_CLOSE_CODES } from "../../src/protocol/close-codes.js";
import { decodeManagerMessage, decodeWorkerMessage, encode } from "../../src/protocol/messages.js";
import { absorbMetrics, copyMetrics, EMPTY_METRICS, type MetricsSummary } from "../../src/protocol/metrics.js";

const hello = {
  type: "hello",
  protocol: 1,
  id: "web-01",
  hostname: "web-01.lan",
  agentVersion: "0.1.0",
  labels: { role: "web" },
  platform: { os: "linux", arch: "x64", release: "6.1.0" },
};

describe("wire protocol", () => {
  it("accepts every worker message type, and round-trips through encode", () => {
    const messages = [
      hello,
      { type: "heartbeat", seq: 0, metrics: EMPTY_METRICS },
      { type: "response", id: 1, result: { ok: true } },
      { type: "response", id: "a", error: { code: "unknown_method", message: "no" } },
      { type: "progress", id: 1, progress: 1, total: 3 },
      { type: "goodbye", reason: "SIGTERM" },
    ];
    for (const m of messages) {
      const d = decodeWorkerMessage(JSON.stringify(m));
      assert.ok(d.ok, JSON.stringify(d));
      assert.deepEqual(JSON.parse(encode(d.message)), m);
    }
  });

  it("accepts manager messages", () => {
    assert.ok(decodeManagerMessage(JSON.stringify({ type: "welcome", protocol: 1, sessionId: "x", heartbeatIntervalMs: 1000, managerVersion: "1" })).ok);
    assert.ok(decodeManagerMessage(JSON.stringify({ type: "request", id: 7, method: "status.snapshot" })).ok);
  });

  it("strips unknown keys (forward compatible) but refuses unknown types", () => {
    const d = decodeWorkerMessage(JSON.stringify({ ...hello, future: 1 }));
    assert.ok(d.ok && !("future" in d.message));
    const t = decodeWorkerMessage(JSON.stringify({ type: "shutdown" }));
    assert.equal(t.ok, false);
  });

  it("refuses what is not the protocol, with an error that says where", () => {
    const cases: Array<[unknown, RegExp]> = [
      ["{nope", /not JSON/],
      [JSON.stringify([1, 2]), /invalid/],
      [JSON.stringify({ ...hello, id: "Bad_Id" }), /invalid id: must be a DNS label/],
      [JSON.stringify({ ...hello, protocol: "1" }), /invalid protocol/],
      [JSON.stringify({ type: "heartbeat", seq: -1, metrics: EMPTY_METRICS }), /invalid seq/],
      [JSON.stringify({ type: "heartbeat", seq: 1, metrics: { ...EMPTY_METRICS, cpu: 400 } }), /invalid metrics\.cpu/],
      [JSON.stringify({ type: "response", id: 1 }), /exactly one of result and error/],
      [JSON.stringify({ type: "response", id: 1, result: 1, error: { code: "x", message: "y" } }), /exactly one/],
      [JSON.stringify({ ...hello, labels: { "bad key!": "x" } }), /invalid labels/],
    ];
    for (const [frame, pattern] of cases) {
      const d = decodeWorkerMessage(frame);
      assert.equal(d.ok, false, String(frame));
      assert.match((d as { error: string }).error, pattern, String(frame));
    }
    assert.match((decodeWorkerMessage(Buffer.from("{}"), true) as { error: string }).error, /binary frames/);
  });

  it("has one distinct application close code per cause, each with a readable reason", () => {
    const codes = Object.values(CloseCode);
    assert.equal(new Set(codes).size, codes.length);
    for (const code of codes) {
      assert.ok(code >= 4000 && code <= 4999);
      assert.doesNotMatch(describeCloseCode(code), /^close code/);
      assert.equal(CloseCode[closeCodeName(code)!], code);
    }
    assert.ok(PERMANENT_CLOSE_CODES.has(CloseCode.IDENTITY_MISMATCH));
    assert.ok(!PERMANENT_CLOSE_CODES.has(CloseCode.REPLACED));
  });

  it("keeps close reasons within the 123-byte limit of the WebSocket protocol", () => {
    const long = closeReason(CloseCode.PROTOCOL_ERROR, "ü".repeat(200));
    assert.ok(Buffer.byteLength(long) <= 123);
    assert.match(long, /^protocol error: ü+\.\.\.$/);
    assert.equal(closeReason(CloseCode.REPLACED), "replaced by a newer session");
  });
});

describe("absorbMetrics", () => {
  const sample = (n: number): MetricsSummary => ({
    ...EMPTY_METRICS,
    cpu: n,
    mem: 40,
    disk: { mount: `/data${n % 2}`, used: 50 + n },
    net: { rx: n, tx: 2 * n },
    battery: n > 2 ? { percent: 80, charging: true } : null,
    errors: n === 2 ? ["fsSize: timed out"] : [],
  });

  it("keeps one summary per worker and copies each heartbeat's values into it", () => {
    const kept = absorbMetrics(null, sample(1));
    const disk = kept.disk;
    for (const n of [2, 3, 4]) {
      const next = sample(n);
      const after = absorbMetrics(kept, next);
      assert.equal(after, kept, "the same object is kept");
      assert.deepEqual(after, next, `the values of heartbeat ${n}`);
      assert.notEqual(after.net, next.net, "nothing of the parsed message is kept");
    }
    assert.equal(kept.disk, disk, "nested objects are reused too");
    assert.deepEqual(absorbMetrics(kept, EMPTY_METRICS), EMPTY_METRICS, "gaps replace values");
  });

  it("a copy shares nothing that a later heartbeat changes", () => {
    const kept = absorbMetrics(null, sample(3));
    const copy = copyMetrics(kept);
    absorbMetrics(kept, sample(4));
    assert.deepEqual(copy, sample(3));
  });
});
