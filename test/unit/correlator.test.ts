import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FleetError } from "../../src/errors.js";
import { Correlator } from "../../src/protocol/correlator.js";
import type { Request } from "../../src/protocol/messages.js";

const isCode = (code: string) => (err: unknown) => err instanceof FleetError && err.code === code;

describe("request correlation", () => {
  it("matches responses to requests by id, in any order", async () => {
    const sent: Request[] = [];
    const c = new Correlator((r) => sent.push(r));
    const a = c.call("m", { n: 1 }, { timeoutMs: 1000 });
    const b = c.call("m", { n: 2 }, { timeoutMs: 1000 });
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0]!.id, sent[1]!.id);
    c.handleResponse({ type: "response", id: sent[1]!.id, result: "second" });
    c.handleResponse({ type: "response", id: sent[0]!.id, result: "first" });
    assert.deepEqual(await Promise.all([a, b]), ["first", "second"]);
    assert.equal(c.size, 0);
  });

  it("turns a remote error into E_REMOTE, and ignores unknown or late responses", async () => {
    const sent: Request[] = [];
    const c = new Correlator((r) => sent.push(r));
    const p = c.call("m", undefined, { timeoutMs: 1000 });
    c.handleResponse({ type: "response", id: sent[0]!.id, error: { code: "boom", message: "broke" } });
    // The message is the worker's text: kept on the error for the log, never in the message a tool shows.
    await assert.rejects(p, (e: unknown) => {
      const err = e as Error & { remoteCode?: string; remoteDetail?: string };
      return isCode("E_REMOTE")(e) && err.message === "the worker answered with error boom" && err.remoteCode === "boom" && err.remoteDetail === "broke";
    });
    assert.equal(c.handleResponse({ type: "response", id: 999, result: 1 }), false);
  });

  it("times out, and a response after the timeout is ignored", async () => {
    const sent: Request[] = [];
    const c = new Correlator((r) => sent.push(r));
    await assert.rejects(c.call("slow", undefined, { timeoutMs: 20 }), isCode("E_TIMEOUT"));
    assert.equal(c.handleResponse({ type: "response", id: sent[0]!.id, result: 1 }), false);
  });

  it("delivers progress, honours abort, and fails everything when the session ends", async () => {
    const sent: Request[] = [];
    const c = new Correlator((r) => sent.push(r));
    const seen: number[] = [];
    const p = c.call("m", undefined, { timeoutMs: 1000, onProgress: (pr) => seen.push(pr.progress) });
    c.handleProgress({ type: "progress", id: sent[0]!.id, progress: 1 });
    c.handleProgress({ type: "progress", id: sent[0]!.id, progress: 2 });
    assert.deepEqual(seen, [1, 2]);

    const ac = new AbortController();
    const aborted = c.call("m", undefined, { timeoutMs: 1000, signal: ac.signal });
    ac.abort();
    await assert.rejects(aborted, isCode("E_CLOSED"));

    c.rejectAll(new FleetError("E_NOT_CONNECTED", "gone"));
    await assert.rejects(p, isCode("E_NOT_CONNECTED"));
    assert.equal(c.size, 0);
  });

  it("a send that throws fails the call at once", async () => {
    const c = new Correlator(() => {
      throw new Error("socket closed");
    });
    await assert.rejects(c.call("m", undefined, { timeoutMs: 1000 }), isCode("E_NOT_CONNECTED"));
  });
});
