import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ManagerProc, startWorker, useCerts } from "../helpers/fleet.js";
import { Proc, sleep } from "../helpers/processes.js";

const helper = (name: string) => fileURLToPath(new URL(`../helpers/${name}`, import.meta.url));
const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

/**
 * Fuzzing with real peers: the manager stays up, its memory stays bounded, and honest workers stay healthy.
 * Bounded in frames and in time; the fuzzers stop by themselves.
 */
describe("fuzzing the manager", () => {
  const honest = ["f1", "f2", "f3"];
  const fuzzIds = ["fz1", "fz2", "fz3", "fz4"];
  const fx = useCerts("fuzz", [...honest, ...fuzzIds], { before, after });
  let manager: ManagerProc;
  let baseline = 0;

  before(async () => {
    // The fuzzers reconnect as fast as they can under four identities: with the session rate on, nearly every
    // session would be refused at its upgrade and the frames would never reach an open session.
    manager = await ManagerProc.start(fx.certs, ["--max-session-rate", "0"]);
    for (const id of honest) startWorker(fx.certs, id, manager.url);
    for (const id of honest) await manager.waitForState(id, "healthy", 5000);
    await sleep(1000);
    baseline = rssMb(manager.pid);
  });

  /** Runs a fuzzer process to completion while sampling the manager's memory. */
  async function fuzz(script: string, args: string[]) {
    const p = new Proc(script, args, {}, [], [process.execPath, "--import", "tsx", helper(script)]);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(manager.pid))), 500);
    const { code } = await p.exited;
    clearInterval(sampler);
    assert.equal(code, 0, JSON.stringify(p.lines.slice(-5)));
    return { stats: JSON.parse(p.stdout.at(-1)!) as Record<string, number | Record<string, number>>, peak };
  }

  function assertUnharmed(peak: number, t: { diagnostic(m: string): void }) {
    t.diagnostic(`manager RSS after settling: ${Math.round(rssMb(manager.pid))} MB`);
    assert.ok(manager.running, "the manager is up");
    assert.ok(!manager.lines.some((l) => l.level === "fatal" || /uncaught|unhandled/i.test(String(l.msg ?? l.raw))), "nothing escaped");
    assert.ok(peak - baseline < 150, `memory bounded: ${Math.round(baseline)} MB before, peak ${Math.round(peak)} MB`);
    for (const id of honest) assert.deepEqual(manager.transitions(id).map((t) => t.to), ["healthy"], `${id} stayed healthy`);
  }

  it("at least 20,000 random and mutated frames over at least 30 s from authenticated clients", async (t) => {
    const { stats, peak } = await fuzz("fuzz-frames.ts", [manager.url, fx.certs.ca, fx.dir, fuzzIds.join(","), "20000", "30", "150", "8"]);
    t.diagnostic(JSON.stringify(stats));
    t.diagnostic(`manager RSS ${Math.round(baseline)} MB before, peak ${Math.round(peak)} MB`);
    assert.ok((stats.frames as number) >= 20_000, `${stats.frames} frames`);
    assert.ok((stats.elapsedMs as number) >= 30_000);
    const codes = stats.closeCodes as Record<string, number>;
    assert.ok((codes["4000"] ?? 0) > 0, "protocol errors were found and closed");
    await sleep(1500); // a heartbeat round after the storm
    assertUnharmed(peak, t);
    // The manager still takes a new session (under a fuzzer's identity, so the honest ones stay untouched).
    const from = manager.lines.length;
    const w = startWorker(fx.certs, "fz1", manager.url);
    await manager.waitFor((l) => l.msg === "worker connected" && l.worker === "fz1", 5000, "new session", from);
    w.kill("SIGTERM");
    await w.exited;
  });

  it("at least 20,000 writes of garbage below TLS over at least 30 s", async (t) => {
    const host = new URL(manager.url).hostname;
    const { stats, peak } = await fuzz("fuzz-bytes.ts", [host, String(manager.port), "20000", "30", "150", "16"]);
    t.diagnostic(JSON.stringify(stats));
    t.diagnostic(`manager RSS ${Math.round(baseline)} MB before, peak ${Math.round(peak)} MB`);
    assert.ok((stats.writes as number) >= 20_000, `${stats.writes} writes`);
    assert.ok((stats.elapsedMs as number) >= 30_000);
    await sleep(1500);
    assertUnharmed(peak, t);
    // The count of suppressed repeats is written when its window closes: waited for, not assumed.
    await manager.waitFor((l) => l.msg === "suppressed similar warnings", 10_000, "the log was not flooded: repeats were counted");
  });
});
