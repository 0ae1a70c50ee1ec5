import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CatalogEntry, catalogHash, MAX_OUTPUT_CHUNK_CHARS, TAIL_BYTES, type OutputChunk } from "../../src/protocol/actions.js";
import { checkArguments } from "../../src/protocol/arguments.js";
import { parseDefinition, renderArgv, type CommandAction } from "../../src/worker/actions/definition.js";
import { OutputCapture } from "../../src/worker/actions/output-capture.js";
import { OutputPacer } from "../../src/worker/actions/output-pacer.js";
import { fitResult, MAX_RESULT_BYTES } from "../../src/worker/actions/result-fit.js";

const FILE = "/etc/mcp-fleet/actions.d/x.json";
const base = {
  name: "echo_args",
  description: "Echo its arguments",
  argv: ["/bin/echo", "fixed", "{text}"],
  params: { text: { type: "string", maxLength: 200 } },
};

function refused(def: unknown): { file: string; field: string; reason: string } {
  const parsed = parseDefinition(FILE, typeof def === "string" ? def : JSON.stringify(def));
  assert.equal(parsed.ok, false, "refused");
  if (parsed.ok) throw new Error("unreachable");
  return { file: parsed.error.file, field: parsed.error.field, reason: parsed.error.reason };
}

function loaded(def: unknown): CommandAction {
  const parsed = parseDefinition(FILE, JSON.stringify(def));
  if (!parsed.ok) throw parsed.error;
  return parsed.action;
}

describe("command action definitions", () => {
  it("a good file loads with the defaults: timeout 60 s, destructive, concurrency 4", () => {
    const action = loaded(base);
    assert.equal(action.entry.kind, "command");
    assert.equal(action.entry.timeoutMs, 60_000);
    assert.equal(action.entry.destructive, true);
    assert.equal(action.entry.concurrency, 4);
    assert.deepEqual(action.argv, [{ literal: "/bin/echo" }, { literal: "fixed" }, { param: "text" }]);
    assert.equal(loaded({ ...base, timeout: "500ms", destructive: false, concurrency: 2 }).entry.timeoutMs, 500);
  });

  it("its catalogue entry is in the wire's parsed form, so both ends hash it alike", () => {
    const entry = loaded(base).entry;
    const overTheWire = CatalogEntry.array().parse(JSON.parse(JSON.stringify([entry])));
    assert.equal(catalogHash(overTheWire), catalogHash([entry]));
  });

  const refusals: Array<[string, unknown, string, RegExp]> = [
    ["not JSON", "{ nope", "file", /not JSON/],
    ["argv[0] relative", { ...base, argv: ["echo", "{text}"] }, "argv.0", /absolute/],
    ["argv[0] a placeholder", { ...base, argv: ["{text}"] }, "argv.0", /absolute|program/],
    ["a placeholder inside an item", { ...base, argv: ["/bin/echo", "--msg={text}"] }, "argv.1", /whole argv item/],
    ["two placeholders in one item", { ...base, argv: ["/bin/echo", "{text}{text}"] }, "argv.1", /whole argv item/],
    ["an undeclared placeholder", { ...base, argv: ["/bin/echo", "{other}"] }, "argv.1", /not a declared parameter/],
    ["a placeholder that is no parameter name", { ...base, argv: ["/bin/echo", "{Text}"] }, "argv.1", /not a declared parameter/],
    ["an unknown field", { ...base, shell: true }, "file", /shell|unrecognized/i],
    ["a bad timeout", { ...base, timeout: "30" }, "timeout", /unit/],
    ["a timeout over 1 h", { ...base, timeout: "2h" }, "timeout", /at most/],
    ["concurrency over 64", { ...base, concurrency: 65 }, "concurrency", /64/],
    ["a bad name", { ...base, name: "rm -rf" }, "name", /action name/],
    ["a dotted name", { ...base, name: "srv.tool" }, "name", /dot/],
    ["a bad param type", { ...base, params: { text: { type: "float" } } }, "params.text.type", /./],
    ["a bad param name", { ...base, argv: ["/bin/echo"], params: { Text: { type: "string" } } }, "params.Text", /parameter name/],
    ["a bad pattern", { ...base, params: { text: { type: "string", pattern: "([a-z" } } }, "params.text.pattern", /regular expression/],
    ["min over max", { ...base, argv: ["/bin/echo", "{n}"], params: { n: { type: "integer", minimum: 5, maximum: 1 } } }, "params.n.minimum", /greater/],
    ["a default breaking its own rule", { ...base, params: { text: { type: "string", pattern: "[a-z]+", default: "A1" } } }, "params.text.default", /pattern/],
    ["no description", { ...base, description: undefined }, "description", /./],
  ];
  for (const [what, def, field, reason] of refusals) {
    it(`refuses ${what}, naming the file and the field ${field}`, () => {
      const r = refused(def);
      assert.equal(r.file, FILE);
      assert.equal(r.field, field);
      assert.match(r.reason, reason);
    });
  }

  it("literal braces that are not a placeholder are kept (find -exec {} ;)", () => {
    const action = loaded({ ...base, argv: ["/usr/bin/find", "/var/log", "-name", "{text}", "-exec", "/bin/ls", "{}", ";"] });
    assert.deepEqual(renderArgv(action.argv, { text: "*.log" }), ["/usr/bin/find", "/var/log", "-name", "*.log", "-exec", "/bin/ls", "{}", ";"]);
  });
});

describe("argv rendering", () => {
  const action = loaded({
    name: "render",
    description: "d",
    argv: ["/bin/prog", "{text}", "--lines", "{lines}", "{follow}", "{unit}"],
    params: {
      text: { type: "string" },
      lines: { type: "integer", minimum: 1, maximum: 500, default: 100 },
      follow: { type: "boolean" },
      unit: { type: "string", required: false },
    },
  });
  const render = (args: Record<string, unknown>) => {
    const checked = checkArguments(action.entry.params!, args);
    assert.ok(checked.ok, JSON.stringify(checked));
    return renderArgv(action.argv, checked.values);
  };

  it("each argument is one whole item, whatever it holds", () => {
    for (const text of ["; touch /tmp/pwned", "$(touch /tmp/pwned)", "a b\tc\nd", "`id`", "'\"", "*"]) {
      assert.deepEqual(render({ text, follow: false }), ["/bin/prog", text, "--lines", "100", "false"]);
    }
  });

  it("integers render as decimals and booleans as true/false; an optional parameter without a value drops its item", () => {
    assert.deepEqual(render({ text: "x", lines: 7, follow: true, unit: "ssh.service" }), ["/bin/prog", "x", "--lines", "7", "true", "ssh.service"]);
    assert.deepEqual(render({ text: "x" }), ["/bin/prog", "x", "--lines", "100"]);
  });
});

describe("output capture", () => {
  it("counts everything, passes on the first 1 MiB over both streams, keeps a 4 KiB tail of each", () => {
    let passed = 0;
    const capture = new OutputCapture((_s, text) => (passed += Buffer.byteLength(text)));
    const block = Buffer.alloc(64 * 1024, "a");
    for (let i = 0; i < 40; i++) capture.write(i % 2 ? "stderr" : "stdout", block);
    const out = capture.finish();
    assert.equal(out.stdout.bytes + out.stderr.bytes, 40 * 64 * 1024);
    assert.equal(out.stdout.kept + out.stderr.kept, 1024 * 1024);
    assert.equal(passed, 1024 * 1024);
    assert.equal(out.stdout.tail.length, TAIL_BYTES);
  });

  it("decodes a character split across chunks whole, and a tail never begins inside one", () => {
    const texts: string[] = [];
    const capture = new OutputCapture((_s, t) => texts.push(t));
    const euro = Buffer.from("€"); // three bytes
    capture.write("stdout", euro.subarray(0, 1));
    capture.write("stdout", euro.subarray(1));
    capture.write("stdout", Buffer.from("€".repeat(2000)));
    const out = capture.finish();
    assert.equal(texts.join(""), "€".repeat(2001));
    assert.ok(!out.stdout.tail.includes("\uFFFD"), "no replacement character at the cut");
    assert.equal(out.stdout.tail, "€".repeat(Math.floor(TAIL_BYTES / 3)));
  });
});

describe("output pacer", () => {
  it("sends at most one frame per interval over all invocations, in turn, in chunks of at most 8192 characters", async () => {
    const pacer = new OutputPacer({ framesPerSecond: 100 });
    const sent: Array<{ key: string; chunk: OutputChunk; at: number }> = [];
    const a = pacer.open("a", (chunk) => sent.push({ key: "a", chunk, at: performance.now() }));
    const b = pacer.open("b", (chunk) => sent.push({ key: "b", chunk, at: performance.now() }));
    a.write("stdout", "x".repeat(3 * MAX_OUTPUT_CHUNK_CHARS));
    b.write("stderr", "y".repeat(10));
    b.write("stderr", "z".repeat(10));
    await Promise.all([a.drain(), b.drain()]);
    assert.deepEqual(sent.map((s) => s.key), ["a", "b", "a", "a"]);
    assert.equal(sent[1]!.chunk.data, "y".repeat(10) + "z".repeat(10), "writes are coalesced");
    for (const s of sent) assert.ok(s.chunk.data.length <= MAX_OUTPUT_CHUNK_CHARS);
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i]!.at - sent[i - 1]!.at >= 9, "paced");
    pacer.close();
  });

  it("does not split a surrogate pair, and close() resolves every drain", async () => {
    const pacer = new OutputPacer({ framesPerSecond: 1000, maxChunkChars: 3 });
    const data: string[] = [];
    const a = pacer.open("a", (chunk) => data.push(chunk.data));
    a.write("stdout", "ab😀c");
    await a.drain();
    assert.deepEqual(data, ["ab", "😀c"]);
    a.write("stdout", "x".repeat(100));
    const drained = a.drain();
    pacer.close();
    await drained;
  });
});

describe("final result size", () => {
  it("drops structured, then shortens tails, to fit one frame", () => {
    const stream = { tail: "\u0001".repeat(TAIL_BYTES), bytes: 10, kept: 0 };
    const r = fitResult({
      status: "succeeded",
      exitCode: 0,
      signal: null,
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
      durationMs: 1,
      stdout: stream,
      stderr: stream,
      structured: { big: "x".repeat(70_000) },
      error: "not a code",
    });
    assert.equal(r.structured, undefined);
    assert.equal(r.structuredOmitted, true);
    assert.equal(r.error, "ACTION_FAILED");
    assert.ok(Buffer.byteLength(JSON.stringify(r)) < MAX_RESULT_BYTES);
    assert.ok(r.stdout.tail.length > 1000, "tails kept as far as they fit");
  });
});
