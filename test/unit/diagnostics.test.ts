import assert from "node:assert/strict";
import { existsSync, lstatSync, readdirSync, readFileSync } from "node:fs";
import { link, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CatalogEntry } from "../../src/protocol/actions.js";
import { checkArguments } from "../../src/protocol/arguments.js";
import {
  DIAGNOSTIC_NAMES,
  DIAGNOSTIC_OUTPUTS,
  DIAGNOSTIC_RESULT_MAX_BYTES,
  diagnosticOutput,
  encodedBytes,
  JOURNAL_MESSAGE_MAX,
  PROCESS_COMMAND_MAX,
  PROCESS_NAME_MAX,
  type DiagnosticName,
  type DiskUsageResult,
} from "../../src/protocol/diagnostics.js";
import { capture } from "../../src/worker/actions/builtins/command.js";
import { fitList } from "../../src/worker/actions/builtins/fit.js";
import { scanDiskUsage, type ScanOptions } from "../../src/worker/actions/builtins/disk-usage.js";
import { BUILTINS, DiagnosticError, type Builtin } from "../../src/worker/actions/builtins/index.js";
import { parseJournal, sinceArgument } from "../../src/worker/actions/builtins/journal.js";
import { parseShow } from "../../src/worker/actions/builtins/service-status.js";

const SYSTEMD_BOOTED = existsSync("/run/systemd/system");
const HAS_JOURNAL = ["/run/log/journal", "/var/log/journal"].some((d) => existsSync(d) && readdirSync(d).length > 0);

function builtin(name: DiagnosticName): Builtin {
  const b = BUILTINS.find((x) => x.entry.name === name);
  assert.ok(b, `no builtin ${name}`);
  return b;
}

function context(timeoutMs = 10_000, signal = new AbortController().signal) {
  return { signal, timeoutMs };
}

/** Runs a diagnostic as the worker will: arguments checked against its params, the result against its schema. */
async function run(name: DiagnosticName, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const b = builtin(name);
  const checked = checkArguments(b.entry.params ?? {}, args);
  assert.ok(checked.ok, JSON.stringify(checked));
  const result = await b.run(checked.values, context());
  assertValid(name, result);
  return result;
}

function assertValid(name: DiagnosticName, result: unknown): void {
  const parsed = DIAGNOSTIC_OUTPUTS[name].safeParse(result);
  assert.ok(parsed.success, `${name}: ${parsed.error?.message}\n${JSON.stringify(result).slice(0, 2000)}`);
  assert.ok(encodedBytes(result) <= DIAGNOSTIC_RESULT_MAX_BYTES);
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DiagnosticError, `not a DiagnosticError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** Processes whose command line holds `marker`, from /proc. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("built-in diagnostics: the catalogue", () => {
  it("offers exactly the seven diagnostics, read-only builtins, each with an output schema", () => {
    assert.deepEqual(BUILTINS.map((b) => b.entry.name).sort(), [...DIAGNOSTIC_NAMES].sort());
    for (const b of BUILTINS) {
      assert.deepEqual(CatalogEntry.parse(b.entry), b.entry, b.entry.name);
      assert.equal(b.entry.kind, "builtin");
      assert.equal(b.entry.destructive, false);
      assert.ok(b.entry.params, b.entry.name);
      assert.ok(diagnosticOutput(b.entry.name), b.entry.name);
    }
    assert.equal(diagnosticOutput("constructor"), undefined);
    assert.equal(diagnosticOutput("echo_args"), undefined);
  });

  it("fills each parameter's default", () => {
    const defaults = (name: DiagnosticName, args: Record<string, unknown>) => {
      const checked = checkArguments(builtin(name).entry.params ?? {}, args);
      assert.ok(checked.ok, JSON.stringify(checked));
      return checked.values;
    };
    assert.deepEqual(defaults("processes", {}), { sort: "cpu", limit: 10 });
    assert.deepEqual(defaults("journal", {}), { lines: 100 });
    assert.deepEqual(defaults("disk_usage", { path: "/" }), { path: "/", depth: 1, limit: 10 });
    assert.deepEqual(defaults("check_tcp", { host: "::1", port: 22 }), { host: "::1", port: 22, timeout: 3000 });
    assert.deepEqual(defaults("journal", { since: "2026-12-03 19:00", priority: "err", unit: "ssh.service" }), {
      since: "2026-12-03 19:00",
      priority: "err",
      unit: "ssh.service",
      lines: 100,
    });
  });

  it("refuses out-of-range and malformed arguments, naming the parameter", () => {
    const refusals: Array<[DiagnosticName, Record<string, unknown>, string]> = [
      ["processes", { limit: 0 }, "limit"],
      ["processes", { limit: 51 }, "limit"],
      ["processes", { limit: 2.5 }, "limit"],
      ["processes", { sort: "name" }, "sort"],
      ["processes", { user: "root" }, "user"],
      ["service_status", {}, "unit"],
      ["service_status", { unit: "../etc/passwd" }, "unit"],
      ["service_status", { unit: "a b" }, "unit"],
      ["service_status", { unit: "--all" }, "unit"],
      ["service_status", { unit: "x".repeat(257) }, "unit"],
      ["service_status", { unit: "ssh*" }, "unit"],
      ["journal", { lines: 0 }, "lines"],
      ["journal", { lines: 501 }, "lines"],
      ["journal", { priority: "loud" }, "priority"],
      ["journal", { since: "yesterday" }, "since"],
      ["journal", { since: "10y" }, "since"],
      ["journal", { since: "-10m" }, "since"],
      ["journal", { unit: "a;b" }, "unit"],
      ["disk_usage", {}, "path"],
      ["disk_usage", { path: "relative/dir" }, "path"],
      ["disk_usage", { path: "/tmp\nx" }, "path"],
      ["disk_usage", { path: "/", depth: 0 }, "depth"],
      ["disk_usage", { path: "/", depth: 4 }, "depth"],
      ["disk_usage", { path: "/", limit: 0 }, "limit"],
      ["disk_usage", { path: "/", limit: 51 }, "limit"],
      ["listening_ports", { all: true }, "all"],
      ["check_tcp", { port: 22 }, "host"],
      ["check_tcp", { host: "127.0.0.1" }, "port"],
      ["check_tcp", { host: "127.0.0.1", port: 0 }, "port"],
      ["check_tcp", { host: "127.0.0.1", port: 65536 }, "port"],
      ["check_tcp", { host: "127.0.0.1", port: 80, timeout: 99 }, "timeout"],
      ["check_tcp", { host: "127.0.0.1", port: 80, timeout: 30_001 }, "timeout"],
      ["check_tcp", { host: "a b", port: 80 }, "host"],
      ["check_tcp", { host: "$(touch /tmp/pwned)", port: 80 }, "host"],
      ["resolve", {}, "name"],
      ["resolve", { name: "bad_name!" }, "name"],
      ["resolve", { name: "-x.example" }, "name"],
      ["resolve", { name: `${"a".repeat(64)}.example` }, "name"],
    ];
    for (const [name, args, param] of refusals) {
      const checked = checkArguments(builtin(name).entry.params ?? {}, args);
      assert.equal(checked.ok, false, `${name} ${JSON.stringify(args)} was accepted`);
      if (!checked.ok) assert.equal(checked.param, param, `${name} ${JSON.stringify(args)}`);
    }
  });
});

describe("built-in diagnostics: results fit one frame", () => {
  it("refuses a result over the byte bound, and a list cut to fit it says how many it left out", () => {
    // The widest a row may be: every string at its longest, in three-byte characters.
    const row = (pid: number) => ({
      pid,
      ppid: 1,
      user: "u".repeat(32),
      name: "€".repeat(PROCESS_NAME_MAX),
      command: "€".repeat(PROCESS_COMMAND_MAX),
      state: "sleeping",
      cpuPercent: 99.99,
      memoryPercent: 99.99,
      rssBytes: 2 ** 40,
      startedAt: new Date(0).toISOString(),
    });
    const rows = Array.from({ length: 50 }, (_, i) => row(i + 1));
    const build = (kept: readonly unknown[], omitted: number) => ({ sort: "cpu", total: 50, processes: [...kept], omitted });
    assert.equal(DIAGNOSTIC_OUTPUTS.processes.safeParse(build(rows, 0)).success, false, "50 such rows are over the bound");
    const fitted = fitList(rows, build) as { processes: unknown[]; omitted: number };
    assertValid("processes", fitted);
    assert.ok(fitted.omitted > 0 && fitted.processes.length > 0);
    assert.equal(fitted.processes.length + fitted.omitted, 50);
    assert.deepEqual(fitted.processes[0], rows[0], "the first (busiest) are kept");
  });

  it("refuses fields no schema declares", () => {
    const result = { host: "127.0.0.1", port: 1, reachable: false, latencyMs: null, address: null, error: "ECONNREFUSED" };
    assertValid("check_tcp", result);
    assert.equal(DIAGNOSTIC_OUTPUTS.check_tcp.safeParse({ ...result, note: "anything" }).success, false);
  });
});

describe("built-in diagnostics: run on this machine", () => {
  let server: Server;
  let port: number;
  let closedPort: number;
  let tree: string;

  before(async () => {
    server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    tree = await mkdtemp(join(tmpdir(), "mcp-fleet-du-"));
  });

  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(tree, { recursive: true, force: true });
  });

  it("processes lists this test's own process, with its command line", async () => {
    // Resident memory no other process here comes near, so this process ranks among the first 50 by memory.
    const ballast = Buffer.allocUnsafe(192 * 1024 * 1024).fill(1);
    const result = (await run("processes", { sort: "memory", limit: 50 })) as { processes: Array<Record<string, unknown>>; total: number };
    assert.ok(ballast.length > 0);
    assert.ok(result.processes.length <= 50 && result.total >= result.processes.length);
    const mine = result.processes.find((p) => p.pid === process.pid);
    assert.ok(mine, `pid ${process.pid} not among ${result.processes.map((p) => p.pid).join(",")}`);
    assert.match(String(mine.command), /node/);
    assert.ok((mine.rssBytes as number) >= 192 * 1024 * 1024);
    const memory = result.processes.map((p) => p.memoryPercent as number);
    assert.deepEqual(memory, [...memory].sort((a, b) => b - a));

    const byCpu = (await run("processes", {})) as { sort: string; processes: unknown[] };
    assert.equal(byCpu.sort, "cpu");
    assert.ok(byCpu.processes.length <= 10 && byCpu.processes.length > 0);
  });

  it("listening_ports sees the server this test opened, and whose it is", async () => {
    const result = (await run("listening_ports")) as { ports: Array<Record<string, unknown>> };
    const mine = result.ports.find((p) => p.port === port && p.address === "127.0.0.1");
    assert.ok(mine, `port ${port} not listed: ${JSON.stringify(result.ports)}`);
    assert.equal(mine.pid, process.pid);
    const ports = result.ports.map((p) => p.port as number);
    assert.deepEqual(ports, [...ports].sort((a, b) => a - b));
  });

  it("check_tcp: reachable for a listening port, ECONNREFUSED for a closed one", async () => {
    const open = await run("check_tcp", { host: "127.0.0.1", port });
    assert.equal(open.reachable, true);
    assert.equal(open.error, null);
    assert.equal(open.address, "127.0.0.1");
    assert.ok(typeof open.latencyMs === "number" && open.latencyMs >= 0);

    const closed = await run("check_tcp", { host: "127.0.0.1", port: closedPort, timeout: 2000 });
    assert.equal(closed.reachable, false);
    assert.equal(closed.error, "ECONNREFUSED");
    assert.equal(closed.latencyMs, null);
  });

  it("resolve localhost gives a loopback address", async () => {
    const result = (await run("resolve", { name: "localhost" })) as { addresses: Array<{ address: string; family: number }>; error: unknown };
    assert.equal(result.error, null);
    assert.ok(
      result.addresses.some((a) => a.address === "127.0.0.1" || a.address === "::1"),
      JSON.stringify(result.addresses),
    );
  });

  it("disk_usage ranks the directories of a known tree, follows no symbolic link and counts a hard link once", async () => {
    await mkdir(join(tree, "big", "sub"), { recursive: true });
    await mkdir(join(tree, "small"));
    await mkdir(join(tree, "empty"));
    await writeFile(join(tree, "big", "a"), Buffer.alloc(300_000, 1));
    await link(join(tree, "big", "a"), join(tree, "big", "a-again"));
    await writeFile(join(tree, "big", "sub", "b"), Buffer.alloc(100_000, 1));
    await writeFile(join(tree, "small", "c"), Buffer.alloc(10_000, 1));
    await writeFile(join(tree, "top-file"), Buffer.alloc(1_000, 1));
    // A link to a large tree: followed, it would dwarf everything else.
    await symlink("/usr", join(tree, "usr-link"));
    const size = async (...parts: string[]) => (await lstat(join(tree, ...parts))).size;

    const result = (await run("disk_usage", { path: tree, depth: 2 })) as DiskUsageResult;
    assert.equal(result.stoppedEarly, false);
    assert.deepEqual(
      result.directories.map((d) => [d.path, d.depth]),
      [["big", 1], ["big/sub", 2], ["small", 1], ["empty", 1]],
    );
    const big = result.directories[0]!;
    assert.equal(big.apparentBytes, (await size("big")) + (await size("big", "sub")) + 300_000 + 100_000);
    assert.equal(big.files, 2);
    assert.ok(big.bytes >= 400_000, "allocated space counts the files once each");
    assert.equal(result.directories[2]!.apparentBytes, (await size("small")) + 10_000);
    assert.equal(result.total.files, 5, "a, b, c, top-file and the symbolic link itself");
    assert.equal(result.total.directories, 5);
    assert.ok(result.total.apparentBytes < 500_000, "the link to /usr was not followed");
    assert.equal(result.scanned, 10);

    const shallow = (await run("disk_usage", { path: tree, limit: 1 })) as DiskUsageResult;
    assert.deepEqual(
      shallow.directories.map((d) => d.path),
      ["big"],
    );
  });

  it("disk_usage stays on the file system it starts on", async () => {
    // A mount point is a directory on another device (lstat: a symbolic link is not one).
    const top = lstatSync("/dev").dev;
    const mounts = readdirSync("/dev", { withFileTypes: true })
      .filter((d) => d.isDirectory() && lstatSync(`/dev/${d.name}`).dev !== top)
      .map((d) => d.name);
    const result = (await run("disk_usage", { path: "/dev", limit: 50 })) as DiskUsageResult;
    assert.ok(result.otherFilesystems >= mounts.length, `${result.otherFilesystems} < ${mounts.join(",")}`);
    for (const m of mounts) assert.ok(!result.directories.some((d) => d.path === m), `entered ${m}`);
  });

  it("disk_usage stops early at its entry and time bounds, and says so", async () => {
    const wide = join(tree, "wide");
    for (let d = 0; d < 3; d++) {
      await mkdir(join(wide, `d${d}`), { recursive: true });
      await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(join(wide, `d${d}`, `f${f}`), "x")));
    }
    const opts: ScanOptions = { depth: 1, limit: 10, signal: new AbortController().signal, maxMs: 10_000, maxEntries: 50 };
    const byEntries = await scanDiskUsage(wide, opts);
    assertValid("disk_usage", byEntries);
    assert.equal(byEntries.stoppedEarly, true);
    assert.equal(byEntries.stopReason, "entries");
    assert.equal(byEntries.scanned, 50);

    const byTime = await scanDiskUsage(wide, { ...opts, maxEntries: 200_000, maxMs: 0 });
    assertValid("disk_usage", byTime);
    assert.equal(byTime.stoppedEarly, true);
    assert.equal(byTime.stopReason, "time");

    const whole = await scanDiskUsage(wide, { ...opts, maxEntries: 200_000 });
    assert.equal(whole.stoppedEarly, false);
    assert.equal(whole.scanned, 303);
    assert.equal(whole.total.files, 300);
  });

  it("disk_usage fails with the file system's code for a missing path or a file, and stops when aborted", async () => {
    const d = builtin("disk_usage");
    await rejectsWithCode(d.run({ path: join(tree, "missing"), depth: 1, limit: 10 }, context()), "ENOENT");
    await writeFile(join(tree, "plain"), "x");
    await rejectsWithCode(d.run({ path: join(tree, "plain"), depth: 1, limit: 10 }, context()), "ENOTDIR");
    const aborted = new AbortController();
    aborted.abort(new Error("session ended"));
    await assert.rejects(d.run({ path: tree, depth: 1, limit: 10 }, context(10_000, aborted.signal)), /session ended/);
  });

  it("service_status fails with UNAVAILABLE where systemd is not the init system", { skip: SYSTEMD_BOOTED && "systemd is PID 1 here" }, async () => {
    await rejectsWithCode(builtin("service_status").run({ unit: "ssh.service" }, context()), "UNAVAILABLE");
  });

  it("service_status describes a real unit", { skip: !SYSTEMD_BOOTED && "no systemd as PID 1 on this machine: positive case skipped" }, async () => {
    const result = await run("service_status", { unit: "systemd-journald.service" });
    assert.equal(result.unit, "systemd-journald.service");
    assert.equal(result.loadState, "loaded");
  });

  it("journal fails with UNAVAILABLE where there is no journal", { skip: HAS_JOURNAL && "this machine keeps a journal" }, async () => {
    await rejectsWithCode(builtin("journal").run({ lines: 10 }, context()), "UNAVAILABLE");
  });

  it("journal reads the newest entries", { skip: !HAS_JOURNAL && "no systemd journal on this machine: positive case skipped" }, async () => {
    const result = (await run("journal", { lines: 5 })) as { entries: unknown[] };
    assert.ok(result.entries.length <= 5);
  });
});

describe("built-in diagnostics: reading systemctl and journalctl output", () => {
  it("reads systemctl show, unset values as null", () => {
    const text = [
      "Id=ssh.service",
      "LoadState=loaded",
      "ActiveState=active",
      "SubState=running",
      "UnitFileState=enabled",
      "Description=OpenBSD Secure Shell server",
      "MainPID=812",
      "ExecMainStatus=0",
      "Result=success",
      "NRestarts=2",
      "MemoryCurrent=[not set]",
      "ActiveEnterTimestamp=Thu 2026-12-03 19:00:00 UTC",
      "StateChangeTimestamp=",
      "FragmentPath=/lib/systemd/system/ssh.service",
      "",
    ].join("\n");
    const result = parseShow(text, "ssh");
    assertValid("service_status", result);
    assert.equal(result.unit, "ssh.service");
    assert.equal(result.mainPid, 812);
    assert.equal(result.restarts, 2);
    assert.equal(result.memoryBytes, null);
    assert.equal(result.stateChangeTimestamp, null);

    const missing = parseShow("Id=nope.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0\nMemoryCurrent=18446744073709551615\n", "nope");
    assertValid("service_status", missing);
    assert.equal(missing.loadState, "not-found");
    assert.equal(missing.mainPid, null);
    assert.equal(missing.memoryBytes, null);
    assert.equal(missing.restarts, null);
  });

  it("reads journalctl JSON: binary and multi-valued fields, oversized and hostile messages", () => {
    const at = (s: number) => String(BigInt(1_764_788_400 + s) * 1_000_000n);
    const lines = [
      { __REALTIME_TIMESTAMP: at(0), PRIORITY: "6", _SYSTEMD_UNIT: "ssh.service", SYSLOG_IDENTIFIER: "sshd", _PID: "812", MESSAGE: "Accepted publickey" },
      { __REALTIME_TIMESTAMP: at(1), PRIORITY: "3", MESSAGE: [104, 105, 0, 255] },
      { __REALTIME_TIMESTAMP: at(2), MESSAGE: null },
      { __REALTIME_TIMESTAMP: at(3), SYSLOG_IDENTIFIER: ["a b", "c"], MESSAGE: "line one\nline two\u202e\u0007" },
      { __REALTIME_TIMESTAMP: at(4), MESSAGE: "x".repeat(5000) },
    ].map((l) => JSON.stringify(l));
    const result = parseJournal([...lines, "not json", '{"MESSAGE":"no time"}', ""].join("\n"), { truncated: false, stderr: "" });
    assertValid("journal", result);
    assert.equal(result.entries.length, 5);
    assert.equal(result.omitted, 0);
    const [first, binary, large, hostile, long] = result.entries;
    assert.deepEqual(first, { time: new Date(1_764_788_400_000).toISOString(), priority: 6, unit: "ssh.service", identifier: "sshd", pid: 812, message: "Accepted publickey" });
    assert.match(binary!.message, /^hi/);
    assert.deepEqual([large!.message, large!.messageCut], ["", true]);
    assert.equal(hostile!.identifier, "a%20b");
    for (const ch of ["\n", "\u202e", "\u0007"]) assert.ok(!hostile!.message.includes(ch), "control and format characters are replaced");
    assert.equal(long!.message.length, JOURNAL_MESSAGE_MAX);
    assert.equal(long!.messageCut, true);
  });

  it("keeps the newest journal entries that fit a frame, and counts the rest", () => {
    const at = (s: number) => String(BigInt(1_764_788_400 + s) * 1_000_000n);
    // 500 entries of 500 three-byte characters: far over a frame.
    const text = Array.from({ length: 500 }, (_, i) =>
      JSON.stringify({ __REALTIME_TIMESTAMP: at(i), _SYSTEMD_UNIT: `u${i}.service`, MESSAGE: "€".repeat(600) }),
    ).join("\n");
    const result = parseJournal(`${text}\n{"__REALTIME_TIMESTAMP":"17`, { truncated: true, stderr: "\nHint: You are currently not seeing messages from other users and the system.\n" });
    assertValid("journal", result);
    assert.ok(result.omitted > 0 && result.entries.length > 0);
    assert.equal(result.entries.length + result.omitted, 500);
    assert.equal(result.entries.at(-1)!.unit, "u499.service", "the newest entry is kept");
    assert.match(result.warning ?? "", /^Hint: /);
  });

  it("turns a span into journalctl's @seconds and leaves a date as given", () => {
    const now = Date.UTC(2026, 11, 3, 19, 0, 0);
    assert.equal(sinceArgument("10m", now), `@${now / 1000 - 600}`);
    assert.equal(sinceArgument("3d", now), `@${now / 1000 - 3 * 86_400}`);
    assert.equal(sinceArgument("2026-12-03 18:30", now), "2026-12-03 18:30");
  });
});

describe("built-in diagnostics: running a command", () => {
  it("a missing program is UNAVAILABLE", async () => {
    await rejectsWithCode(capture(["/nonexistent/journalctl"], context()), "UNAVAILABLE");
  });

  it("a command past its time is killed with its whole process group", async () => {
    const marker = `31.${process.pid}${Date.now() % 1000}`;
    await rejectsWithCode(capture(["/bin/sh", "-c", `sleep ${marker} & sleep ${marker}`], context(300)), "TIMEOUT");
    await until("the sleeps are gone", () => processesWith(`sleep\0${marker}`).length === 0);
  });

  it("an abort kills the process group", async () => {
    const marker = `32.${process.pid}${Date.now() % 1000}`;
    const controller = new AbortController();
    const running = capture(["/bin/sh", "-c", `sleep ${marker} & sleep ${marker}`], context(10_000, controller.signal));
    await until("the sleeps started", () => processesWith(`sleep\0${marker}`).length === 2);
    controller.abort(new Error("cancelled"));
    await assert.rejects(running, /cancelled/);
    await until("the sleeps are gone", () => processesWith(`sleep\0${marker}`).length === 0);
  });

  it("output past the cap stops the command and is marked cut", async () => {
    const out = await capture(["/usr/bin/yes"], context(), 10_000);
    assert.equal(out.truncated, true);
    assert.equal(out.stdout.length, 10_000);
  });

  it("passes each argument as one argv item, through no shell", async () => {
    const out = await capture(["/bin/echo", "; touch /tmp/pwned", "$(id)"], context());
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdout.toString(), "; touch /tmp/pwned $(id)\n");
  });
});

