import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { CatalogEntry, type RunResult } from "../../src/protocol/actions.js";
import type { Progress } from "../../src/protocol/messages.js";
import type { Builtin } from "../../src/worker/actions/builtins/index.js";
import { runCommand } from "../../src/worker/actions/runner.js";
import { ActionService } from "../../src/worker/actions/service.js";
import type { RequestContext } from "../../src/worker/link.js";
import { groupMembers } from "../helpers/proc-groups.js";

/** The service in this process, with real programs (/bin/sleep) and built-ins given to it; no link. */

const builtin = (name: string, timeoutMs: number, run: Builtin["run"]): Builtin => ({
  entry: CatalogEntry.parse({
    name,
    kind: "builtin",
    description: name,
    destructive: false,
    params: { who: { type: "string", required: false } },
    timeoutMs,
    concurrency: 4,
  }),
  run,
});

const GREET = builtin("greet", 5000, async (args) => ({ greeting: `hello ${String(args.who ?? "world")}` }));
/** Ignores its signal: the service must end it on time anyway. */
const STUCK = builtin("stuck", 300, () => new Promise(() => {}));

function session(): { ctx: RequestContext; frames: Progress[]; end: () => void } {
  const controller = new AbortController();
  const frames: Progress[] = [];
  return { ctx: { progress: (p) => frames.push({ type: "progress", id: 1, ...p }), signal: controller.signal }, frames, end: () => controller.abort() };
}

const runParams = (invocation: string, action: string, args: Record<string, unknown> = {}, timeoutMs = 30_000) => ({ invocation, action, arguments: args, timeoutMs });
const code = (err: unknown) => (err as { code?: string }).code;

describe("action service", () => {
  let dir: string;
  let service: ActionService;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mcp-fleet-service-"));
    chmodSync(dir, 0o755);
    const write = (file: string, def: unknown) => {
      writeFileSync(join(dir, file), JSON.stringify(def));
      chmodSync(join(dir, file), 0o644);
    };
    write("nap.json", { name: "nap", description: "nap", argv: ["/bin/sleep", "30"], concurrency: 1 });
    write("nap2.json", { name: "nap2", description: "nap", argv: ["/bin/sleep", "30"] });
    write("missing.json", { name: "missing", description: "no such program", argv: ["/nonexistent/program"] });
    // A command action may not take a built-in's name.
    write("greet.json", { name: "greet", description: "shadow", argv: ["/bin/true"] });
    service = new ActionService({ actionsDir: dir, builtins: [GREET, STUCK], maxActions: 2, log: createLogger({ name: "test", level: "silent" }) });
    await service.start();
  });
  after(async () => {
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one catalogue from built-ins and command actions, the built-in keeping a name both define", () => {
    const entries = service.entries();
    assert.deepEqual(entries.map((e) => e.name), ["greet", "missing", "nap", "nap2", "stuck"]);
    assert.equal(entries.find((e) => e.name === "greet")!.kind, "builtin");
    assert.match(service.hash()!, /^[0-9a-f]{16}$/);
  });

  it("refuses a duplicate invocation id, and past the action's concurrency or the host's maximum: busy", async () => {
    const s = session();
    const first = service.handle("actions.run", runParams("a", "nap"), s.ctx) as Promise<RunResult>;
    await assert.rejects(service.handle("actions.run", runParams("a", "nap2"), s.ctx), (e) => code(e) === "duplicate_invocation");
    await assert.rejects(service.handle("actions.run", runParams("b", "nap"), s.ctx), (e) => code(e) === "busy");
    const second = service.handle("actions.run", runParams("c", "nap2"), s.ctx) as Promise<RunResult>;
    await assert.rejects(service.handle("actions.run", runParams("d", "nap2"), s.ctx), (e) => code(e) === "busy");
    await assert.rejects(service.handle("actions.run", runParams("e", "rm"), s.ctx), (e) => code(e) === "unknown_action");
    // The session ends: what it started is cancelled.
    s.end();
    const results = await Promise.all([first, second]);
    assert.deepEqual(results.map((r) => r.status), ["cancelled", "cancelled"]);
    assert.deepEqual(results.map((r) => r.signal), ["SIGTERM", "SIGTERM"]);
  });

  it("a built-in's result comes back as structured; its arguments are checked first", async () => {
    const s = session();
    const r = (await service.handle("actions.run", runParams("g1", "greet", { who: "fleet" }), s.ctx)) as RunResult;
    assert.equal(r.status, "succeeded");
    assert.deepEqual(r.structured, { greeting: "hello fleet" });
    await assert.rejects(service.handle("actions.run", runParams("g2", "greet", { who: 5 }), s.ctx), (e) => code(e) === "invalid_arguments");
  });

  it("a built-in that ignores its signal still ends timed_out, soon after its timeout", async () => {
    const t0 = performance.now();
    const r = (await service.handle("actions.run", runParams("s1", "stuck"), session().ctx)) as RunResult;
    assert.equal(r.status, "timed_out");
    assert.ok(performance.now() - t0 < 2500);
  });

  it("a program that cannot be started fails with SPAWN_FAILED", async () => {
    const r = (await service.handle("actions.run", runParams("m1", "missing"), session().ctx)) as RunResult;
    assert.equal(r.status, "failed");
    assert.equal(r.error, "SPAWN_FAILED");
    assert.equal(r.exitCode, null);
  });

  it("without diagnostics, the built-ins are not offered", async () => {
    const bare = new ActionService({ actionsDir: dir, builtins: [GREET], diagnostics: false, log: createLogger({ name: "test", level: "silent" }) });
    await bare.start();
    assert.ok(!bare.entries().some((e) => e.kind === "builtin"));
    await bare.stop();
  });

  it("stop() cancels what is running", async () => {
    const running = service.handle("actions.run", runParams("z1", "nap2"), session().ctx) as Promise<RunResult>;
    await service.stop();
    assert.equal((await running).status, "cancelled");
    await assert.rejects(service.handle("actions.run", runParams("z2", "nap2"), session().ctx), (e) => code(e) === "busy");
  });
});

describe("command runner", () => {
  it("a program ignoring SIGTERM is killed with SIGKILL after the grace, with everything its group holds", async () => {
    let out = "";
    const r = await runCommand({
      argv: ["/bin/sh", "-c", "trap '' TERM; echo $$; /bin/sleep 30 & /bin/sleep 30"],
      timeoutMs: 300,
      killGraceMs: 300,
      signal: new AbortController().signal,
      onOutput: (_s, text) => (out += text),
    });
    assert.equal(r.status, "timed_out");
    assert.equal(r.signal, "SIGKILL");
    const pid = Number(out.split("\n")[0]);
    assert.ok(pid > 1);
    assert.deepEqual(groupMembers(pid), [], "no process of its group is left");
  });

  it("the program gets a minimal environment and / as its working directory, and its exit code is reported", async () => {
    let out = "";
    const r = await runCommand({
      argv: ["/bin/sh", "-c", "env; pwd; exit 3"],
      timeoutMs: 5000,
      signal: new AbortController().signal,
      onOutput: (_s, text) => (out += text),
    });
    assert.equal(r.status, "failed");
    assert.equal(r.exitCode, 3);
    const lines = out.trim().split("\n");
    assert.equal(lines.at(-1), "/");
    const env = lines.slice(0, -1).filter((l) => !l.startsWith("PWD=") && !l.startsWith("SHLVL=") && !l.startsWith("_="));
    assert.deepEqual(env.sort(), ["LANG=C.UTF-8", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
  });
});
