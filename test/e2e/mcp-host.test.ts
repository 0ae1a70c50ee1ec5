import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createLogger } from "../../src/log.js";
import { CatalogEntry, MAX_KEPT_OUTPUT_BYTES } from "../../src/protocol/actions.js";
import { McpHost } from "../../src/worker/actions/mcp-host.js";
import { STARTS_PER_MINUTE } from "../../src/worker/actions/mcp-server-process.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const FIXTURE = fileURLToPath(new URL("../fixtures/mcp-server.ts", import.meta.url));
const fixture = (extra: Record<string, unknown> = {}, flags: string[] = []) => ({
  command: process.execPath,
  args: ["--import", "tsx", FIXTURE, ...flags],
  cwd: REPO,
  ...extra,
});

/**
 * A server that answers initialize and tools/list and exits at any tool call, in plain JavaScript so that its many
 * starts cost little.
 */
const CRASHING_SERVER = `
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...m }) + "\\n");
let buf = "";
process.stdin.on("data", (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\\n")) >= 0) {
    const m = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (m.method === "initialize") send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "crashy", version: "1" } } });
    else if (m.method === "tools/list") send({ id: m.id, result: { tools: [{ name: "crash", inputSchema: { type: "object" } }] } });
    else if (m.method === "tools/call") process.exit(1);
  }
});`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ms: number, pred: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("MCP servers hosted by the worker (McpHost against a real SDK server over stdio)", () => {
  const dir = mkdtempSync(join(tmpdir(), "mcp-host-"));
  const file = join(dir, "mcp-servers.json");
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ name: "worker", level: "debug", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  let changes = 0;
  const host = new McpHost({ file, log, onChange: () => changes++ });
  const signal = () => new AbortController().signal;
  /** Every server process any start logged, so none outlives the test. */
  const pids = () => lines.filter((l) => l.msg === "MCP server started").map((l) => l.pid as number);
  const pidOf = async (server: string): Promise<number> => {
    const r = await host.run(`${server}.pid`, {}, { signal: signal(), timeoutMs: 10_000 });
    assert.equal(r.status, "succeeded", JSON.stringify(r));
    return (r.structured as { pid: number }).pid;
  };

  before(async () => {
    writeFileSync(
      file,
      JSON.stringify({
        globalShortcut: "ignored, as in Claude Desktop's file",
        mcpServers: {
          fixture: fixture({ timeout: "5s" }, ["--extras"]),
          idler: fixture({ idleTimeout: "1s" }),
          crashy: { command: process.execPath, args: ["-e", CRASHING_SERVER] },
          "bad name!": fixture(),
          late: fixture({ timeout: "forever" }),
          typo: fixture({ idleTimout: "1s" }),
        },
      }),
    );
    chmodSync(file, 0o644);
    await host.start();
  });

  after(async () => {
    await host.stop();
    for (const pid of pids()) if (alive(pid)) process.kill(pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("offers each tool as <server>.<tool>, destructive unless readOnlyHint, and refuses bad entries by field", () => {
    const entries = host.entries();
    const byName = new Map(entries.map((e) => [e.name, e]));
    for (const e of entries) assert.deepEqual(CatalogEntry.parse(e), e);
    assert.deepEqual(
      entries.filter((e) => e.name.startsWith("fixture.")).map((e) => e.name).sort(),
      ["fixture.crash", "fixture.echo", "fixture.fail", "fixture.grow", "fixture.hang", "fixture.noisy", "fixture.pid", "fixture.touch"],
    );
    assert.ok(byName.has("idler.echo") && byName.has("crashy.crash"));
    const echo = byName.get("fixture.echo")!;
    assert.equal(echo.kind, "mcp");
    assert.equal(echo.destructive, false);
    assert.equal(echo.description, "Echo the text back");
    assert.equal(echo.timeoutMs, 5000);
    assert.equal(echo.concurrency, 4);
    assert.deepEqual(Object.keys((echo.inputSchema as { properties: object }).properties), ["text"]);
    assert.equal(byName.get("fixture.touch")!.destructive, true);
    assert.equal(byName.get("fixture.hang")!.destructive, true, "no annotations: destructive");
    assert.equal(byName.get("idler.echo")!.timeoutMs, 60_000);
    const noisy = byName.get("fixture.noisy")!.description;
    assert.ok(noisy.length <= 500 && noisy.endsWith("…") && noisy.startsWith("line one line two\uFFFD "), noisy.slice(0, 40));

    const leftOut = lines.filter((l) => l.msg === "MCP tool left out of the catalogue").map((l) => [l.tool, l.err]);
    assert.deepEqual(leftOut.map(([tool]) => tool).sort(), ["bad name!", "huge"]);
    assert.match(String(leftOut.find(([tool]) => tool === "huge")![1]), /input schema of \d+ characters, over 8192/);

    const refused = lines.filter((l) => l.msg === "MCP server refused");
    assert.deepEqual(
      refused.map((l) => [l.file, l.server, l.field]),
      [
        [file, "bad name!", "mcpServers"],
        [file, "late", "mcpServers.late.timeout"],
        [file, "typo", "mcpServers.typo.idleTimout"],
      ],
    );
    assert.ok(!entries.some((e) => /^(late|typo)\./.test(e.name)));
  });

  it("runs a tool: text content as text, structuredContent as structured; isError is TOOL_ERROR", async () => {
    const r = await host.run("fixture.echo", { text: "hello; $(touch /tmp/pwned)" }, { signal: signal(), timeoutMs: 5000 });
    assert.deepEqual(r, { status: "succeeded", text: "hello; $(touch /tmp/pwned)", structured: { echoed: "hello; $(touch /tmp/pwned)" } });
    const failed = await host.run("fixture.fail", {}, { signal: signal(), timeoutMs: 5000 });
    assert.deepEqual(failed, { status: "failed", text: "it went wrong", error: "TOOL_ERROR" });
    const big = await host.run("fixture.noisy", {}, { signal: signal(), timeoutMs: 5000 });
    assert.equal(big.status, "succeeded");
    assert.equal(Buffer.byteLength(big.text), MAX_KEPT_OUTPUT_BYTES);
    const unknown = await host.run("fixture.nope", {}, { signal: signal(), timeoutMs: 5000 });
    assert.deepEqual(unknown, { status: "failed", text: "", error: "UNKNOWN_ACTION" });
  });

  it("a server that dies mid-call fails that call with SERVER_DIED, and the next call starts it again", async () => {
    const before = await pidOf("fixture");
    const r = await host.run("fixture.crash", {}, { signal: signal(), timeoutMs: 5000 });
    assert.deepEqual(r, { status: "failed", text: "", error: "SERVER_DIED" });
    const after = await pidOf("fixture");
    assert.notEqual(after, before);
    assert.ok(!alive(before));
  });

  it("a server killed from outside while idle is started again by the next call", async () => {
    const before = await pidOf("fixture");
    process.kill(before, "SIGKILL");
    await until("the killed server gone", 5000, () => !alive(before));
    const r = await host.run("fixture.echo", { text: "again" }, { signal: signal(), timeoutMs: 5000 });
    assert.equal(r.status, "succeeded");
    assert.notEqual(await pidOf("fixture"), before);
  });

  it("a call past its timeout is timed_out, the server is stopped, and the next call gets a fresh one", async () => {
    const before = await pidOf("fixture");
    const started = Date.now();
    const r = await host.run("fixture.hang", {}, { signal: signal(), timeoutMs: 1000 });
    assert.deepEqual(r, { status: "timed_out", text: "" });
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    await until("the hung server stopped", 8000, () => !alive(before));
    const after = await pidOf("fixture");
    assert.notEqual(after, before);
  });

  it("an aborted signal cancels the request: cancelled, and the server stays up", async () => {
    const before = await pidOf("fixture");
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    const r = await host.run("fixture.hang", {}, { signal: controller.signal, timeoutMs: 5000 });
    assert.deepEqual(r, { status: "cancelled", text: "" });
    assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
    assert.equal(await pidOf("fixture"), before);
  });

  it("a tools/list_changed notification re-lists the tools and announces the change", async () => {
    const was = changes;
    const r = await host.run("fixture.grow", {}, { signal: signal(), timeoutMs: 5000 });
    assert.equal(r.status, "succeeded");
    await until("fixture.grown in the catalogue", 5000, () => host.entries().some((e) => e.name === "fixture.grown"));
    assert.ok(changes > was);
  });

  it("a server idle past its idleTimeout is stopped, and started again by the next call", async () => {
    const before = lines.find((l) => l.msg === "MCP server started" && l.server === "idler")!.pid as number;
    await until("the idle server stopped", 8000, () => !alive(before));
    const r = await host.run("idler.echo", { text: "awake" }, { signal: signal(), timeoutMs: 10_000 });
    assert.equal(r.status, "succeeded");
  });

  it(`a server dying at every call is started at most ${STARTS_PER_MINUTE} times a minute, then SERVER_UNAVAILABLE`, async () => {
    const results: string[] = [];
    for (let i = 0; i < STARTS_PER_MINUTE + 1; i++) {
      const r = await host.run("crashy.crash", {}, { signal: signal(), timeoutMs: 10_000 });
      results.push(r.error ?? r.status);
    }
    assert.deepEqual(results, [...Array<string>(STARTS_PER_MINUTE).fill("SERVER_DIED"), "SERVER_UNAVAILABLE"]);
    assert.ok(lines.some((l) => l.msg === "MCP server restarting too often; leaving it down for now" && l.server === "crashy"));
  });

  it("a missing file means no servers; a file others may write is refused whole", async () => {
    const seen: Array<Record<string, unknown>> = [];
    const quiet = createLogger({ name: "worker", level: "info", destination: { write: (l: string) => void seen.push(JSON.parse(l) as Record<string, unknown>) } });
    const missing = new McpHost({ file: join(dir, "none.json"), log: quiet, onChange: () => {} });
    await missing.start();
    assert.deepEqual(missing.entries(), []);
    assert.ok(seen.some((l) => l.msg === "no MCP servers file; hosting no MCP servers"));
    const loose = join(dir, "loose.json");
    writeFileSync(loose, JSON.stringify({ mcpServers: { fixture: fixture() } }));
    chmodSync(loose, 0o666);
    const refused = new McpHost({ file: loose, log: quiet, onChange: () => {} });
    await refused.start();
    assert.deepEqual(refused.entries(), []);
    const line = seen.find((l) => l.msg === "MCP servers file refused");
    assert.equal(line?.file, loose);
    assert.match(String(line?.err), /writable by its group or others \(mode 666\)/);
    await Promise.all([missing.stop(), refused.stop()]);
  });

  it("stop() leaves no server process behind", async () => {
    await host.stop();
    const all = pids();
    assert.ok(all.length >= 8, `saw ${all.length} starts`);
    await until("every server process gone", 5000, () => all.every((pid) => !alive(pid)));
    assert.ok(lines.some((l) => l.msg === "MCP server stderr" && /serving on stdio/.test(String(l.stderr))), "stderr reaches the log");
  });
});
