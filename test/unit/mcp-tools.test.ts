import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CatalogEntry, MAX_KEPT_OUTPUT_BYTES } from "../../src/protocol/actions.js";
import { cutUtf8, toolEntries, toolEntry, toolOutput } from "../../src/worker/actions/mcp-tools.js";

const schema = { type: "object" as const, properties: { text: { type: "string" } } };

describe("MCP tools as catalogue entries and run output", () => {
  it("makes an entry that CatalogEntry accepts, read-only only when the tool says so", () => {
    const made = toolEntry("files", { name: "read", description: "Read\ta file\u202e", inputSchema: schema, annotations: { readOnlyHint: true } }, 30_000);
    assert.ok(made.ok);
    assert.deepEqual(CatalogEntry.parse(made.entry), made.entry);
    assert.equal(made.entry.description, "Read a file\uFFFD");
    assert.equal(made.entry.destructive, false);
    const write = toolEntry("files", { name: "write", inputSchema: schema, annotations: { readOnlyHint: false, title: "Write a file" } }, 30_000);
    assert.ok(write.ok && write.entry.destructive && write.entry.description === "Write a file");
    const unsaid = toolEntry("files", { name: "rm", inputSchema: schema }, 30_000);
    assert.ok(unsaid.ok && unsaid.entry.destructive);
  });

  it("leaves out a bad name, an oversized schema, a tool listed twice, and says why", () => {
    const big = { type: "object" as const, properties: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`p${i}`, { type: "string" }])) };
    const { entries, skipped } = toolEntries(
      "s",
      [
        { name: "ok", inputSchema: schema },
        { name: "has space", inputSchema: schema },
        { name: "big", inputSchema: big },
        { name: "ok", inputSchema: schema },
      ],
      60_000,
    );
    assert.deepEqual(entries.map((e) => e.name), ["s.ok"]);
    assert.deepEqual(skipped.map((s) => s.tool), ["has space", "big", "ok"]);
    assert.match(skipped[1]!.reason, /over 8192/);
  });

  it("joins text content, names other content, keeps structuredContent, marks isError", () => {
    const out = toolOutput({
      content: [
        { type: "text", text: "one" },
        { type: "image", data: "AAAA", mimeType: "image/png" },
        { type: "text", text: "two" },
      ],
      structuredContent: { n: 1 },
      isError: true,
    });
    assert.deepEqual(out, { text: "one\n[image content not carried]\ntwo", structured: { n: 1 }, isError: true });
    assert.deepEqual(toolOutput({ content: [] }), { text: "", isError: false });
  });

  it("cuts text to the kept bytes without splitting a character", () => {
    assert.equal(cutUtf8("abc", 10), "abc");
    assert.equal(cutUtf8("aé", 2), "a");
    assert.equal(cutUtf8("a€b", 3), "a");
    assert.equal(cutUtf8("a€b", 4), "a€");
    assert.equal(cutUtf8("😀😀", 5), "😀");
    const long = toolOutput({ content: [{ type: "text", text: "é".repeat(MAX_KEPT_OUTPUT_BYTES) }] }).text;
    assert.equal(Buffer.byteLength(long), MAX_KEPT_OUTPUT_BYTES);
    assert.ok(!long.includes("\uFFFD"));
  });
});
