import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeInvocationCursor,
  decodeOutputCursor,
  decodeRecentCursor,
  fitJson,
  invocationCursor,
  outputCursor,
  outputPage,
  recentCursor,
} from "../../src/mcp/job-pages.js";
import { jsonTail } from "../../src/mcp/job-views.js";
import { seeded } from "../helpers/prng.js";

// Characters of every escaping class: plain, quote and backslash, short escapes, other controls, a surrogate pair,
// lone surrogates.
const ALPHABET = ["a", "é", '"', "\\", "\n", "\t", "\u0000", "\u001f", "😀", "\ud800", "\udc00", "\u2028"];

function randomText(rand: () => number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
  return s;
}

describe("get_job's pages", () => {
  it("fitJson counts exactly what JSON.stringify writes, and never splits a surrogate pair", () => {
    const rand = seeded(7).rand;
    for (let round = 0; round < 200; round++) {
      const s = randomText(rand, 300);
      const start = Math.floor(rand() * 50);
      const budget = Math.floor(rand() * 600);
      const end = fitJson(s, start, budget);
      const piece = s.slice(start, end);
      assert.ok(JSON.stringify(piece).length - 2 <= budget, `round ${round}`);
      if (end < s.length) {
        // The next character (a whole pair, if it starts one) would not have fitted.
        const pair = /^[\ud800-\udbff][\udc00-\udfff]/.test(s.slice(end, end + 2));
        const longer = s.slice(start, end + (pair ? 2 : 1));
        assert.ok(JSON.stringify(longer).length - 2 > budget, `round ${round}: stopped early`);
      }
      const c = s.charCodeAt(end - 1);
      const after = s.charCodeAt(end);
      assert.ok(!(c >= 0xd800 && c <= 0xdbff && after >= 0xdc00 && after <= 0xdfff), "a pair is kept whole");
    }
  });

  it("the output pages put stdout then stderr back together exactly", () => {
    const rand = seeded(11).rand;
    const out = { stdout: randomText(rand, 5000), stderr: randomText(rand, 3000), truncated: false };
    let from = { stdout: 0, stderr: 0 };
    let stdout = "";
    let stderr = "";
    for (let i = 0; i < 1000; i++) {
      const page = outputPage(out, from, 2000);
      assert.ok(JSON.stringify(page.stdout).length + JSON.stringify(page.stderr).length - 4 <= 2000);
      stdout += page.stdout;
      stderr += page.stderr;
      if (!page.next) break;
      from = page.next;
    }
    assert.equal(stdout, out.stdout);
    assert.equal(stderr, out.stderr);
  });

  it("jsonTail keeps the longest end within its cap", () => {
    const s = "x".repeat(100) + "\u0001".repeat(100);
    const t = jsonTail(s, 302);
    assert.equal(t, "\u0001".repeat(50));
    assert.equal(jsonTail("short", 100), "short");
  });

  it("each kind of cursor reads back, and is refused by the others", () => {
    assert.equal(decodeInvocationCursor(invocationCursor(42)), 42);
    assert.equal(decodeRecentCursor(recentCursor("job-7")), "job-7");
    assert.deepEqual(decodeOutputCursor(outputCursor({ stdout: 10, stderr: 3 })), { stdout: 10, stderr: 3 });
    assert.equal(decodeInvocationCursor(recentCursor("job-7")), null);
    assert.equal(decodeOutputCursor(invocationCursor(1)), null);
    assert.equal(decodeRecentCursor(outputCursor({ stdout: 1, stderr: 1 })), null);
  });
});
