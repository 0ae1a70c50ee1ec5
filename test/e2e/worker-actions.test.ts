import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocketServer, type WebSocket } from "ws";
import { isFleetError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { catalogHash, MAX_KEPT_OUTPUT_BYTES, MAX_OUTPUT_CHUNK_CHARS, TAIL_BYTES, type CatalogEntry, type ListResult, type RunResult } from "../../src/protocol/actions.js";
import type { Progress } from "../../src/protocol/messages.js";
import { startWorker, useCerts } from "../helpers/fleet.js";
import { groupMembers } from "../helpers/proc-groups.js";
import type { Proc } from "../helpers/processes.js";

/**
 * Command actions on a real worker process: the host's files define what may run, arguments stay whole argv
 * items, timeouts and cancellation leave no process behind, and output is capped and paced. The manager runs in
 * this process (its request API is what jobs use); the last part speaks the protocol as a manager itself.
 */

const FIVE_MIB = 5 * 1024 * 1024;
const AS_ROOT = process.getuid?.() === 0;

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    assert.ok(Date.now() < deadline, `${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function writeAction(dir: string, file: string, def: unknown, mode = 0o644): void {
  const path = join(dir, file);
  writeFileSync(path, typeof def === "string" ? def : JSON.stringify(def, null, 2));
  chmodSync(path, mode);
}

/** A program whose first output line is its pid (= its process group), printed once two more processes are in it. */
const SLEEPER = ["/bin/sh", "-c", "/bin/sleep 60 & /bin/sleep 60 & echo $$; wait"];

describe("worker actions", () => {
  const fx = useCerts("actions", ["act1", "act2"], { before, after });
  const pwned = `/tmp/pwned-${randomBytes(6).toString("hex")}`;
  const hashes: Array<{ worker: string; hash: string }> = [];
  let manager: Manager;
  let worker: Proc;
  let actionsDir: string;
  let invocations = 0;
  const nextId = () => `inv-${++invocations}`;

  before(async () => {
    actionsDir = join(fx.dir, "actions.d");
    mkdirSync(actionsDir);
    chmodSync(actionsDir, 0o755);
    writeAction(actionsDir, "echo_args.json", {
      name: "echo_args",
      description: "Print each argument in brackets",
      argv: ["/usr/bin/printf", "[%s]\\n", "{text}"],
      params: { text: { type: "string", maxLength: 200 } },
      destructive: false,
    });
    writeAction(actionsDir, "unit.json", {
      name: "unit_name",
      description: "Echo a unit name",
      argv: ["/bin/echo", "{unit}"],
      params: { unit: { type: "string", pattern: "[a-z0-9-]+\\.service" } },
    });
    writeAction(actionsDir, "sleeper.json", { name: "sleeper", description: "Sleep a minute", argv: SLEEPER, timeout: "2m" });
    writeAction(actionsDir, "chatty.json", {
      name: "chatty",
      description: "Print 5 MiB",
      argv: ["/bin/sh", "-c", `/usr/bin/yes 0123456789abcdef | /usr/bin/head -c ${FIVE_MIB}; echo done >&2`],
    });
    writeAction(actionsDir, "bad-placeholder.json", { name: "bad_placeholder", description: "x", argv: ["/bin/echo", "--x={text}"], params: { text: { type: "string" } } });
    writeAction(actionsDir, "group-writable.json", { name: "group_writable", description: "x", argv: ["/bin/true"] }, 0o664);
    if (AS_ROOT) {
      // Owned by neither root nor the agent's user: only root can hand a file to nobody.
      writeAction(actionsDir, "other-owner.json", { name: "other_owner", description: "x", argv: ["/bin/true"] });
      chownSync(join(actionsDir, "other-owner.json"), 65534, 65534);
    }
    writeAction(actionsDir, "notes.txt", "not an action");

    const certs = fx.certs;
    manager = await startManager({
      tls: { ca: certs.ca, cert: certs.managerCert, key: certs.managerKey },
      host: "127.0.0.1",
      port: 0,
      heartbeatIntervalMs: 500,
      missedHeartbeats: 6,
      log: createLogger({ name: "manager", level: "silent" }),
    });
    manager.onCatalog((w, hash) => hashes.push({ worker: w, hash }));
    worker = startWorker(certs, "act1", `wss://127.0.0.1:${manager.port}`, [
      "--actions-dir", actionsDir,
      "--mcp-servers", join(fx.dir, "no-mcp-servers.json"),
    ]);
    await waitFor("act1 connects", 10_000, () => manager.registry.get("act1")?.state === "healthy");
  });
  after(async () => {
    await manager?.close();
    rmSync(pwned, { force: true });
  });

  async function listAll(): Promise<{ hash: string; entries: CatalogEntry[] }> {
    const entries: CatalogEntry[] = [];
    let cursor: number | null = 0;
    let hash = "";
    for (let page = 0; cursor !== null && page < 300; page++) {
      const r: ListResult = await manager.request("act1", "actions.list", { cursor }, { timeoutMs: 5000 });
      entries.push(...r.entries);
      hash = r.hash;
      cursor = r.next;
    }
    return { hash, entries };
  }

  function run(action: string, args: Record<string, unknown>, timeoutMs: number, onProgress?: (p: Progress) => void, invocation = nextId()) {
    return manager.request("act1", "actions.run", { invocation, action, arguments: args, timeoutMs }, { timeoutMs: timeoutMs + 15_000, onProgress });
  }

  const remoteCode = (err: unknown) => (isFleetError(err, "E_REMOTE") ? (err as Error & { remoteCode?: string }).remoteCode : undefined);

  it("the catalogue holds the good files' actions under the hash the hello named; bad files are refused by file and field", async () => {
    const named = hashes.findLast((h) => h.worker === "act1");
    assert.ok(named, "hello named a catalogue hash");
    const { hash, entries } = await listAll();
    assert.equal(hash, named.hash);
    assert.equal(catalogHash(entries), hash, "the manager's own hash of what it fetched matches");
    const names = entries.map((e) => e.name);
    for (const n of ["chatty", "echo_args", "sleeper", "unit_name"]) assert.ok(names.includes(n), n);
    for (const n of ["bad_placeholder", "group_writable", "other_owner"]) assert.ok(!names.includes(n), n);
    assert.deepEqual(names, [...names].sort(), "sorted by name");
    const echo = entries.find((e) => e.name === "echo_args")!;
    assert.equal(echo.kind, "command");
    assert.equal(echo.destructive, false);
    assert.equal(entries.find((e) => e.name === "sleeper")!.timeoutMs, 120_000);
    const refusals = worker.lines.filter((l) => l.msg === "action definition refused");
    const refusal = (file: string) => refusals.find((l) => String(l.file).endsWith(file));
    assert.equal(refusal("bad-placeholder.json")?.field, "argv.1");
    assert.equal(refusal("group-writable.json")?.field, "mode");
    if (AS_ROOT) assert.equal(refusal("other-owner.json")?.field, "owner");
    assert.equal(refusal("notes.txt"), undefined, "other names are ignored");
  });

  it("a new file in the watched dir makes a new catalogue hash, which the next heartbeat carries", async () => {
    const before = hashes.findLast((h) => h.worker === "act1")!.hash;
    writeAction(actionsDir, "added.json", { name: "added", description: "Added later", argv: ["/bin/true"] });
    const changed = await waitFor("a new hash", 5000, () => hashes.findLast((h) => h.worker === "act1" && h.hash !== before));
    const { hash, entries } = await listAll();
    assert.equal(hash, changed.hash);
    assert.ok(entries.some((e) => e.name === "added"));
    // SIGHUP reads the dir again, and the worker carries on.
    const from = worker.lines.length;
    worker.kill("SIGHUP");
    await worker.waitFor((l) => l.msg === "command actions loaded", 5000, "a reload on SIGHUP", from);
    assert.ok(worker.running);
    assert.equal((await listAll()).hash, changed.hash, "the same files, the same hash");
  });

  it("shell syntax in an argument reaches the program as one literal argv item, and nothing else runs", async () => {
    for (const text of [`; touch ${pwned}`, `$(touch ${pwned})`, `\`touch ${pwned}\` && touch ${pwned} | x > ${pwned}`]) {
      const streamed: string[] = [];
      const r = await run("echo_args", { text }, 5000, (p) => p.output && streamed.push(p.output.data));
      assert.equal(r.status, "succeeded");
      assert.equal(r.exitCode, 0);
      // printf prints "[%s]" once per argument: one bracketed line is one argv item.
      assert.equal(r.stdout.tail, `[${text}]\n`);
      assert.equal(streamed.join(""), `[${text}]\n`);
      assert.equal(r.stdout.bytes, Buffer.byteLength(`[${text}]\n`));
    }
    assert.equal(existsSync(pwned), false, `${pwned} was not created`);
  });

  it("an argument failing its parameter's schema, or one the action does not declare, is refused: invalid_arguments", async () => {
    for (const args of [{ unit: "ssh.service; reboot" }, { unit: "-f.service" }, { unit: "ssh.service", extra: "x" }, {}]) {
      await assert.rejects(run("unit_name", args, 5000), (err) => remoteCode(err) === "invalid_arguments", JSON.stringify(args));
    }
    const ok = await run("unit_name", { unit: "ssh.service" }, 5000);
    assert.equal(ok.stdout.tail, "ssh.service\n");
  });

  it("a run past its timeout ends timed_out, and no process of its group is left", async () => {
    let pid = 0;
    let membersWhileRunning: number[] = [];
    const r = await run("sleeper", {}, 1000, (p) => {
      if (pid || !p.output) return;
      pid = Number(p.output.data.split("\n")[0]);
      membersWhileRunning = groupMembers(pid);
    });
    assert.equal(r.status, "timed_out");
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, "SIGTERM");
    assert.ok(r.durationMs >= 900 && r.durationMs < 4000, `durationMs ${r.durationMs}`);
    assert.ok(pid > 1, "the program said its pid");
    assert.ok(membersWhileRunning.length >= 3, `the group had its processes while running (${membersWhileRunning.length})`);
    assert.deepEqual(groupMembers(pid), [], "no process of the group left");
  });

  it("actions.cancel stops a running invocation within 1 s, leaving no process behind", async () => {
    const invocation = nextId();
    let pid = 0;
    const running = run("sleeper", {}, 60_000, (p) => void (pid ||= p.output ? Number(p.output.data.split("\n")[0]) : 0), invocation);
    await waitFor("the sleeper's pid", 5000, () => pid > 1);
    assert.ok(groupMembers(pid).length >= 3);
    const t0 = performance.now();
    const cancelled = await manager.request("act1", "actions.cancel", { invocation }, { timeoutMs: 5000 });
    assert.deepEqual(cancelled, { found: true });
    const r = await running;
    const took = performance.now() - t0;
    assert.equal(r.status, "cancelled");
    assert.ok(took < 1000, `stopped in ${Math.round(took)} ms`);
    assert.deepEqual(groupMembers(pid), []);
    assert.deepEqual(await manager.request("act1", "actions.cancel", { invocation }, { timeoutMs: 5000 }), { found: false });
  });

  it("5 MiB of output: all of it counted, the first 1 MiB streamed in paced chunks before the answer, a 4 KiB tail inline", async () => {
    const chunks: Array<{ at: number; data: string; progress: number }> = [];
    const r: RunResult = await run("chatty", {}, 60_000, (p) => p.output && chunks.push({ at: performance.now(), data: p.output.data, progress: p.progress }));
    assert.equal(r.status, "succeeded");
    assert.equal(r.stdout.bytes, FIVE_MIB);
    assert.equal(r.stdout.kept, MAX_KEPT_OUTPUT_BYTES - r.stderr.kept);
    assert.ok(r.stdout.tail.length <= TAIL_BYTES && r.stdout.tail.length > TAIL_BYTES - 20);
    const stream = "0123456789abcdef\n".repeat(FIVE_MIB / 17 + 1).slice(0, FIVE_MIB);
    assert.equal(r.stdout.tail, stream.slice(-r.stdout.tail.length));
    assert.equal(r.stderr.tail, "done\n");
    const streamed = chunks.map((c) => c.data).join("");
    assert.equal(Buffer.byteLength(streamed), MAX_KEPT_OUTPUT_BYTES, "exactly the kept MiB, all before the answer");
    assert.ok(streamed.startsWith(stream.slice(0, 100_000)), "streamed in order");
    for (const c of chunks) assert.ok(c.data.length <= MAX_OUTPUT_CHUNK_CHARS);
    for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i]!.progress > chunks[i - 1]!.progress, "progress counts up");
    // Paced: at most 20 frames in any second (one of slack for timer jitter).
    for (let i = 0; i + 21 < chunks.length; i++) assert.ok(chunks[i + 21]!.at - chunks[i]!.at >= 1000, `frames ${i}..${i + 21} within a second`);
  });

  describe("speaking the protocol as the manager", () => {
    let server: Server;
    let wss: WebSocketServer;
    let session: Promise<{ ws: WebSocket; hello: { catalog?: string } }>;
    let rogueWorker: Proc;
    const answers = new Map<number, (msg: Record<string, unknown>) => void>();
    const progress = new Map<number, (msg: Record<string, unknown>) => void>();
    let nextRequest = 1;

    before(async () => {
      server = createServer({
        ca: readFileSync(fx.certs.ca),
        cert: readFileSync(fx.certs.managerCert),
        key: readFileSync(fx.certs.managerKey),
        requestCert: true,
        rejectUnauthorized: false,
      });
      wss = new WebSocketServer({ server, perMessageDeflate: false });
      session = new Promise((resolve) => {
        wss.on("connection", (ws) => {
          ws.on("message", (data) => {
            const msg = JSON.parse(String(data)) as Record<string, unknown>;
            if (msg.type === "hello") {
              ws.send(JSON.stringify({ type: "welcome", protocol: msg.protocol, sessionId: "s1", heartbeatIntervalMs: 1000, managerVersion: "test" }));
              resolve({ ws, hello: msg as { catalog?: string } });
            } else if (msg.type === "response") answers.get(msg.id as number)?.(msg);
            else if (msg.type === "progress") progress.get(msg.id as number)?.(msg);
          });
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as { port: number }).port;
      rogueWorker = startWorker(fx.certs, "act2", `wss://127.0.0.1:${port}`, ["--actions-dir", actionsDir, "--mcp-servers", join(fx.dir, "none.json")]);
    });
    after(async () => {
      rogueWorker?.kill("SIGKILL");
      for (const c of wss?.clients ?? []) c.terminate();
      wss?.close();
      await new Promise((resolve) => server?.close(resolve));
    });

    async function ask(method: string, params: unknown, onProgress?: (msg: Record<string, unknown>) => void): Promise<Record<string, unknown>> {
      const { ws } = await session;
      const id = nextRequest++;
      if (onProgress) progress.set(id, onProgress);
      const answer = new Promise<Record<string, unknown>>((resolve) => answers.set(id, resolve));
      ws.send(JSON.stringify({ type: "request", id, method, params }));
      return answer;
    }

    it("a request for an action the host does not define is refused: unknown_action", async () => {
      const { hello } = await session;
      assert.match(hello.catalog ?? "", /^[0-9a-f]{16}$/);
      const answer = await ask("actions.run", { invocation: "r1", action: "rm_everything", arguments: {}, timeoutMs: 5000 });
      assert.equal((answer.error as { code: string }).code, "unknown_action");
      const dotted = await ask("actions.run", { invocation: "r2", action: "shell.exec", arguments: { cmd: "id" }, timeoutMs: 5000 });
      assert.equal((dotted.error as { code: string }).code, "unknown_action");
    });

    it("a command line smuggled into the request is refused, and arguments are checked whatever a manager checked", async () => {
      const smuggled = await ask("actions.run", { invocation: "r3", action: "echo_args", arguments: { text: "x" }, argv: ["/bin/sh", "-c", `touch ${pwned}`], timeoutMs: 5000 });
      assert.equal((smuggled.error as { code: string }).code, "invalid_params");
      const unchecked = await ask("actions.run", { invocation: "r4", action: "unit_name", arguments: { unit: "a; touch x" }, timeoutMs: 5000 });
      assert.equal((unchecked.error as { code: string }).code, "invalid_arguments");
      assert.equal(existsSync(pwned), false);
    });

    it("the session ending kills what it started", async () => {
      let pid = 0;
      void ask("actions.run", { invocation: "r5", action: "sleeper", arguments: {}, timeoutMs: 60_000 }, (msg) => {
        const output = msg.output as { data: string } | undefined;
        pid ||= output ? Number(output.data.split("\n")[0]) : 0;
      });
      await waitFor("the sleeper's pid", 5000, () => pid > 1);
      assert.ok(groupMembers(pid).length >= 3);
      const { ws } = await session;
      ws.terminate();
      await waitFor("its group gone", 2000, () => groupMembers(pid).length === 0);
    });
  });
});
