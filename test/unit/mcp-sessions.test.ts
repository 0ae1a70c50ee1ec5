import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { McpSessionTable } from "../../src/manager/mcp-sessions.js";
import type { Principal } from "../../src/mcp/principal.js";

const alice: Principal = { id: "alice", role: "operator", serialNumber: "01", fingerprint256: "AA", notAfter: Infinity };
const victor: Principal = { id: "victor", role: "viewer", serialNumber: "02", fingerprint256: "BB", notAfter: Infinity };

describe("McpSessionTable (MCP sessions over HTTP, on a fake clock)", () => {
  it("holds at most maxSessions, counting the ones still being initialized", () => {
    const table = new McpSessionTable<string>({ maxSessions: 2, idleTimeoutMs: 1000 }, () => 0);
    assert.equal(table.reserve(), true);
    assert.equal(table.reserve(), true);
    assert.equal(table.reserve(), false, "two initializations in flight fill it");
    table.add("s1", "one", alice);
    table.release();
    assert.equal(table.reserve(), false, "one open and one in flight");
    table.release();
    assert.equal(table.reserve(), true, "an initialization that failed gave its room back");
    table.release();
    table.remove("s1");
    assert.equal(table.size, 0);
  });

  it("finds a session only for the certificate that opened it", () => {
    const table = new McpSessionTable<string>({ maxSessions: 4, idleTimeoutMs: 1000 }, () => 0);
    table.add("s1", "one", alice);
    assert.equal(table.get("s1", alice.fingerprint256), "one");
    assert.equal(table.get("s1", victor.fingerprint256), undefined);
    assert.equal(table.get("nope", alice.fingerprint256), undefined);
  });

  it("calls a session idle only with nothing open for the timeout", () => {
    let t = 0;
    const table = new McpSessionTable<string>({ maxSessions: 4, idleTimeoutMs: 1000 }, () => t);
    table.add("s1", "one", alice);
    table.add("s2", "two", victor);
    table.begin("s2"); // a notification stream, held open
    t = 999;
    assert.deepEqual(table.idle(), []);
    t = 1000;
    assert.deepEqual(table.idle().map((s) => [s.id, s.idleMs]), [["s1", 1000]]);
    t = 5000;
    assert.deepEqual(table.idle().map((s) => s.id), ["s1"], "an open stream keeps s2 from being idle however long it lasts");
    table.end("s2");
    t = 5999;
    assert.deepEqual(table.idle().map((s) => s.id), ["s1"], "idle counts from the stream's end");
    t = 6000;
    assert.deepEqual(table.idle().map((s) => s.id), ["s1", "s2"]);
    table.begin("s1");
    table.end("s1");
    assert.deepEqual(table.idle().map((s) => s.id), ["s2"], "a request makes it active again");
  });

  it("picks sessions by principal (a revoked serial's)", () => {
    const table = new McpSessionTable<string>({ maxSessions: 4, idleTimeoutMs: 1000 }, () => 0);
    table.add("s1", "one", alice);
    table.add("s2", "two", victor);
    assert.deepEqual(table.matching((p) => p.serialNumber === "02").map((s) => s.id), ["s2"]);
  });
});
