import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { defaultCertificate, keyBeside, managerUrl } from "../../src/cli/operator-connection.js";
import { toolFailure } from "../../src/cli/operator-calls.js";
import { EXIT, eventLine, healthExit, jobExit, jobView, progressLine, statusView, workersTable, type StatusData } from "../../src/cli/operator-views.js";
import { parseArguments, parseTarget } from "../../src/cli/run.js";
import { block, cell, styleFor, table } from "../../src/cli/terminal-text.js";
import type { WorkerRow } from "../../src/mcp/schemas.js";

const plain = { color: false };
const coloured = { color: true };

const row = (id: string, state: WorkerRow["state"], extra: Partial<WorkerRow> = {}): WorkerRow => ({
  id,
  state,
  reasons: state === "healthy" ? [] : ["connection_lost"],
  connected: state === "healthy" || state === "degraded",
  lastHeartbeatAgeMs: state === "healthy" ? 420 : null,
  labels: { role: "web" },
  ...extra,
});

const counts = (healthy: number, degraded: number, unhealthy: number, offline = 0) => ({
  healthy,
  degraded,
  unhealthy,
  offline,
  total: healthy + degraded + unhealthy + offline,
});

const list = (workers: WorkerRow[], total = workers.length) => ({
  total,
  counts: counts(0, 0, 0),
  fleet: counts(0, 0, 0),
  workers,
  nextCursor: null,
  unverified: [],
  unverifiedTotal: 0,
});

describe("operator CLI: exit codes", () => {
  it("status: 0 all healthy (offline is a clean stop), 1 some degraded, 2 any unhealthy", () => {
    assert.equal(healthExit(counts(3, 0, 0)), EXIT.ok);
    assert.equal(healthExit(counts(2, 0, 0, 1)), EXIT.ok);
    assert.equal(healthExit(counts(0, 0, 0)), EXIT.ok);
    assert.equal(healthExit(counts(2, 1, 0)), 1);
    assert.equal(healthExit(counts(2, 0, 1)), 2);
    assert.equal(healthExit(counts(0, 5, 1)), 2, "unhealthy wins over degraded");
  });

  it("run: 0 only when every target succeeded", () => {
    assert.equal(jobExit({ targets: 3, counts: { succeeded: 3 } }), 0);
    assert.equal(jobExit({ targets: 3, counts: { succeeded: 2, timed_out: 1 } }), 1);
    assert.equal(jobExit({ targets: 2, counts: { succeeded: 1, undeliverable: 1 } }), 1);
  });

  it("unreachable is 3, bad usage 64: neither is a health answer", () => {
    assert.equal(EXIT.unreachable, 3);
    assert.equal(EXIT.usage, 64);
    assert.ok(![0, 1, 2].includes(EXIT.usage));
  });

  it("a tool's refusal of the request is usage (64); anything else it fails with is 1", () => {
    assert.equal(toolFailure("run_action", "E_UNKNOWN_ACTION: no known worker offers action x").exitCode, 64);
    assert.equal(toolFailure("run_action", "E_FORBIDDEN: run_action needs the operator role").exitCode, 64);
    assert.equal(toolFailure("get_job", "E_UNKNOWN_JOB: no job j is kept").exitCode, 64);
    assert.equal(toolFailure("run_action", "E_DECLINED: the user declined").exitCode, 1);
    assert.equal(toolFailure("run_action", "E_TOO_BUSY: 100 jobs").exitCode, 1);
  });
});

describe("operator CLI: tables", () => {
  it("aligns columns by the widest cell, two spaces apart, without trailing spaces", () => {
    const t = table(["A", "LONGER"], [["x", "1"], ["wide-cell", "22"]], plain);
    assert.equal(t, ["A          LONGER", "x          1", "wide-cell  22"].join("\n"));
    for (const line of t.split("\n")) assert.equal(line, line.trimEnd());
    assert.equal(t.split("\n")[1]!.indexOf("1"), t.split("\n")[2]!.indexOf("22"));
  });

  it("colour is added after padding, so a coloured table has the same columns; no colour when off", () => {
    const rows = [row("w1", "healthy"), row("w2", "unhealthy")];
    const strip = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, ""); // eslint-disable-line no-control-regex
    const withColour = workersTable(rows, coloured);
    assert.match(withColour, /\x1b\[31munhealthy/); // eslint-disable-line no-control-regex
    assert.equal(strip(withColour), workersTable(rows, plain));
    assert.doesNotMatch(workersTable(rows, plain), /\x1b/); // eslint-disable-line no-control-regex
  });

  it("styleFor: colour only on a terminal, and never with NO_COLOR", () => {
    assert.equal(styleFor({ isTTY: true }, {}).color, true);
    assert.equal(styleFor({ isTTY: false }, {}).color, false);
    assert.equal(styleFor({}, {}).color, false);
    assert.equal(styleFor({ isTTY: true }, { NO_COLOR: "1" }).color, false);
  });

  it("status: counts, then the problem workers, unhealthy first, and how many more there are", () => {
    const data: StatusData = {
      summary: { counts: counts(1, 1, 1), connected: 2, totalCores: 8, totalMemoryBytes: 1, underPressure: [], recentTransitions: [] },
      unhealthy: list([row("db-1", "unhealthy")], 3),
      degraded: list([row("web-2", "degraded", { reasons: ["cert_expiring"] })]),
    };
    const text = statusView(data, plain);
    const lines = text.split("\n");
    assert.equal(lines[0], "3 workers: 1 healthy, 1 degraded, 1 unhealthy, 0 offline; 2 connected");
    assert.match(lines[2]!, /^WORKER +STATE +REASONS +CONNECTED +HEARTBEAT +LABELS$/);
    assert.match(lines[3]!, /^db-1 +unhealthy +connection_lost +no +- +role=web$/);
    assert.match(lines[4]!, /^web-2 +degraded +cert_expiring +yes/);
    assert.match(text, /… and 2 more \(mcp-fleet workers --state unhealthy\|degraded\)/);
    const healthy = statusView({ ...data, summary: { ...data.summary, counts: counts(3, 0, 0) }, unhealthy: list([]), degraded: list([]) }, plain);
    assert.match(healthy, /no problem workers/);
  });

  it("a job: its head, a row per invocation, its result and the end of its output", () => {
    const job = {
      id: "job-1",
      action: "processes",
      arguments: {},
      status: "failed" as const,
      client: { name: "mcp-fleet-cli", version: "0.1.0", operator: "alice" },
      createdAt: "2026-01-01T00:00:00.000Z",
      endedAt: "2026-01-01T00:00:01.000Z",
      targets: 2,
      counts: { succeeded: 1, failed: 1, pending: 0 },
      maxConcurrency: 10,
      maxErrors: 0,
      timeoutMs: 30_000,
    };
    const stream = (tail: string) => ({ tail, bytes: tail.length, truncated: false });
    const inv = (worker: string, status: "succeeded" | "failed", exitCode: number, out: string) => ({
      worker,
      status,
      exitCode,
      signal: null,
      durationMs: 1500,
      startedAt: null,
      endedAt: null,
      stdout: stream(out),
      stderr: stream(""),
    });
    const text = jobView(job, [inv("w1", "succeeded", 0, "ok\n"), { ...inv("w2", "failed", 1, "a\x1b[2Jb\n"), structured: { n: 1 } }], plain);
    assert.match(text, /^job job-1: processes failed on 2 workers \(1 succeeded, 1 failed\)/);
    assert.match(text, /by operator alice via mcp-fleet-cli 0\.1\.0/);
    assert.match(text, /\nw2 +failed +1 +1\.5s +-\n/);
    assert.match(text, /w2 result:\n {2}\{"n":1\}/);
    assert.match(text, /w2 stdout:\n {2}ab/, "the worker's escape is gone");
  });

  it("a progress bar fits its width", () => {
    assert.equal(progressLine(3, 10, "w1 succeeded", 80), "[######--------------] 3/10  w1 succeeded");
    assert.ok(progressLine(1, 2, "x".repeat(500), 40).length <= 40);
    assert.equal(progressLine(0, 0, "", 80).startsWith("[--------------------] 0/0"), true);
  });
});

describe("operator CLI: worker text is data", () => {
  it("cell strips CSI, OSC and other escapes, and shows other controls as ?", () => {
    assert.equal(cell("web\x1b[31m-01\x1b[0m"), "web-01");
    assert.equal(cell("a\x1b]0;owned\x07b"), "ab", "OSC title change");
    assert.equal(cell("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b"), "alinkb", "OSC 8 hyperlink, ST-terminated");
    assert.equal(cell("a\x9b2Jb"), "ab", "8-bit CSI");
    assert.equal(cell("line\nbreak\r\ttab\x00\x7f"), "line?break??tab??");
    assert.equal(cell("evil\u202egnp.exe"), "evil?gnp.exe", "a bidi override");
    assert.equal(cell("héllo wörld ✓"), "héllo wörld ✓", "printable text stays");
  });

  it("block keeps line breaks and tabs, and strips the rest as cell does", () => {
    assert.equal(block("one\r\ntwo\tthree\x1b[1A\x1b[2K\n"), "one\ntwo\tthree\n");
    assert.equal(block("a\rb"), "a?b", "a lone carriage return could overwrite a line");
  });

  it("worker-controlled fields in a table or event line carry no escape", () => {
    const evil = row("w1", "healthy", { labels: { "x\x1b[2J": "y\x1b]0;t\x07" } });
    assert.doesNotMatch(workersTable([evil], plain), /[\x1b\x07]/); // eslint-disable-line no-control-regex
    const line = eventLine({ seq: 1, at: "2026-01-01T00:00:00.000Z", worker: "w1", from: "healthy", to: "unhealthy", reasons: [{ code: "c", message: "gone\x1b[H\x1b[2J" }] }, plain);
    assert.equal(line, "2026-01-01T00:00:00Z  w1  healthy -> unhealthy  gone");
  });
});

describe("operator CLI: arguments", () => {
  it("--on: all, one id, several ids, key=value and 'label key' are the targets run_action takes", () => {
    assert.deepEqual(parseTarget("all"), { all: true });
    assert.deepEqual(parseTarget("web-01"), { worker_id: "web-01" });
    assert.deepEqual(parseTarget("web-01, web-02"), { worker_ids: ["web-01", "web-02"] });
    assert.deepEqual(parseTarget("role=db"), { label: "role=db" });
    assert.deepEqual(parseTarget("label role=db"), { label: "role=db" });
    assert.deepEqual(parseTarget("label role"), { label: "role" });
    assert.equal(typeof parseTarget(" , "), "string");
  });

  it("key=value takes the type its parameter declares; an undeclared one is JSON when it is JSON", () => {
    assert.deepEqual(parseArguments(["limit=3", "name=007", "all=true"], { limit: "integer", name: "string", all: "boolean" }), { limit: 3, name: "007", all: true });
    assert.deepEqual(parseArguments(["n=3", "s=hello", "list=[1,2]", "eq=a=b"], {}), { n: 3, s: "hello", list: [1, 2], eq: "a=b" });
    assert.equal(typeof parseArguments(["novalue"], {}), "string");
    assert.equal(typeof parseArguments(["=x"], {}), "string");
  });

  it("--manager: /mcp added, a bare host gets port 7443, a worker's wss:// is taken as https, http is refused", () => {
    assert.equal(managerUrl("https://m.example:7443").href, "https://m.example:7443/mcp");
    assert.equal(managerUrl("m.example").href, "https://m.example:7443/mcp");
    assert.equal(managerUrl("127.0.0.1:9000").href, "https://127.0.0.1:9000/mcp");
    assert.equal(managerUrl("wss://m.example:7443").href, "https://m.example:7443/mcp");
    assert.equal(managerUrl("https://m.example:7443/custom").pathname, "/custom");
    assert.throws(() => managerUrl("http://m.example"), /https only/);
  });

  it("the default certificate is the only one in operators/ beside the CA; its key is beside it", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "mcp-fleet-opcli-"));
    try {
      const ca = join(dir, "ca.pem");
      assert.throws(() => defaultCertificate(ca), /no operator or viewer certificate/);
      mkdirSync(join(dir, "viewers"));
      writeFileSync(join(dir, "viewers", "vic.pem"), "");
      writeFileSync(join(dir, "viewers", "vic-key.pem"), "");
      assert.equal(defaultCertificate(ca), join(dir, "viewers", "vic.pem"));
      mkdirSync(join(dir, "operators"));
      writeFileSync(join(dir, "operators", "alice.pem"), "");
      writeFileSync(join(dir, "operators", "alice-key.pem"), "");
      assert.equal(defaultCertificate(ca), join(dir, "operators", "alice.pem"), "an operator's before a viewer's");
      writeFileSync(join(dir, "operators", "bob.pem"), "");
      assert.throws(() => defaultCertificate(ca), /2 certificates \(alice\.pem, bob\.pem\): pass --cert/);
      assert.equal(keyBeside("/x/operators/alice.pem"), "/x/operators/alice-key.pem");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
