/**
 * `npm run demo`: a manager and three local workers with throwaway certificates, their live health refreshed
 * every second. After a few seconds one worker is killed (SIGKILL) to show detection, and later started again.
 * Ctrl-C stops everything and removes the throwaway files. `npm run demo -- --for 20s` stops by itself.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseDuration, formatDuration } from "../src/config/duration.js";
import type { HealthEvent, WorkerView } from "../src/core/registry.js";
import { createLogger } from "../src/log.js";
import { startManager } from "../src/manager/manager.js";
import { initFleet, issueWorker } from "../src/pki/store.js";

const CLI = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const WORKERS = ["alpha", "bravo", "charlie"];
const VICTIM = "bravo";
const KILL_AT_MS = 6000;
const RESTART_AT_MS = 14_000;

const { values } = parseArgs({ options: { for: { type: "string" } } });
const runFor = values.for ? parseDuration(values.for) : null;

const dir = mkdtempSync(join(tmpdir(), "mcp-fleet-demo-"));
const children = new Map<string, ChildProcess>();
let stopping = false;

function startWorker(id: string, managerPort: number): void {
  const log = openSync(join(dir, `${id}.log`), "a");
  const child = spawn(
    process.execPath,
    [
      CLI, "worker",
      "--ca", join(dir, "ca.pem"),
      "--cert", join(dir, "workers", `${id}.pem`),
      "--key", join(dir, "workers", `${id}-key.pem`),
      "--manager", `wss://127.0.0.1:${managerPort}`,
      "--labels", `demo=true,name=${id}`,
      "--collect-interval", "2s",
    ],
    { stdio: ["ignore", "ignore", log] },
  );
  children.set(id, child);
}

const pad = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + "…" : s.padEnd(n));
const fmt = (v: number | null | undefined, unit: string) => (v === null || v === undefined ? "-" : `${v.toFixed(0)}${unit}`);
const COLOURS: Record<string, string> = { healthy: "32", degraded: "33", unhealthy: "31", offline: "90" };
const paint = (state: string, text: string) => (process.stdout.isTTY ? `\x1b[${COLOURS[state]}m${text}\x1b[0m` : text);

function render(workers: WorkerView[], events: HealthEvent[], elapsedMs: number, note: string): string {
  const lines = [
    `mcp-fleet demo: manager + ${WORKERS.length} workers over mutual TLS on loopback (${formatDuration(elapsedMs)})`,
    note,
    "",
    `${pad("WORKER", 10)}${pad("STATE", 11)}${pad("LAST BEAT", 11)}${pad("CPU", 6)}${pad("MEM", 6)}${pad("DISK", 6)}REASONS`,
  ];
  for (const w of workers.sort((a, b) => a.id.localeCompare(b.id))) {
    const age = w.lastHeartbeatAgeMs === null ? "-" : formatDuration(w.lastHeartbeatAgeMs);
    const reasons = w.reasons.map((r) => r.message).join("; ");
    lines.push(
      `${pad(w.id, 10)}${paint(w.state, pad(w.state, 11))}${pad(age, 11)}${pad(fmt(w.metrics?.cpu, "%"), 6)}` +
        `${pad(fmt(w.metrics?.mem, "%"), 6)}${pad(fmt(w.metrics?.disk?.used, "%"), 6)}${reasons}`,
    );
  }
  lines.push("", "recent transitions:");
  for (const e of events.slice(-6)) {
    const why = e.reasons.map((r) => r.message).join("; ");
    lines.push(`  ${new Date(e.at).toISOString().slice(11, 23)}  ${pad(e.worker, 9)} ${e.from ?? "new"} → ${e.to}${why ? `  (${why})` : ""}`);
  }
  lines.push("", runFor ? `stops by itself after ${formatDuration(runFor)}` : "Ctrl-C to stop; throwaway files are removed");
  return lines.join("\n");
}

async function main(): Promise<void> {
  await initFleet({ dir, fleet: "demo" });
  for (const id of WORKERS) await issueWorker({ dir, id });
  const manager = await startManager({
    tls: { ca: join(dir, "ca.pem"), cert: join(dir, "manager.pem"), key: join(dir, "manager-key.pem") },
    host: "127.0.0.1",
    port: 0,
    heartbeatIntervalMs: 1000,
    missedHeartbeats: 3,
    // Disk and memory warnings depend on the machine the demo runs on; they are off to keep the story clear.
    pressurePercent: 0,
    log: createLogger({ name: "manager", level: "silent" }),
  });
  for (const id of WORKERS) startWorker(id, manager.port);

  const started = performance.now();
  let note = "starting three workers...";
  let killed = false;
  let restarted = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    for (const child of children.values()) child.kill("SIGTERM");
    await Promise.all([...children.values()].map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : null)));
    await manager.close();
    rmSync(dir, { recursive: true, force: true });
    console.log(`\nstopped; removed ${dir}`);
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  const timer = setInterval(() => {
    const elapsed = performance.now() - started;
    if (!killed && elapsed >= KILL_AT_MS) {
      killed = true;
      children.get(VICTIM)?.kill("SIGKILL");
      note = `killed ${VICTIM} with SIGKILL at ${formatDuration(elapsed)}: watch it turn unhealthy at once`;
    }
    if (!restarted && elapsed >= RESTART_AT_MS) {
      restarted = true;
      startWorker(VICTIM, manager.port);
      note = `started ${VICTIM} again at ${formatDuration(elapsed)}: it reconnects and is healthy again`;
    }
    const screen = render(manager.registry.list(), manager.registry.events(), elapsed, note);
    process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${screen}\n` : `${screen}\n\n`);
    if (runFor !== null && elapsed >= runFor) void stop(0);
  }, 1000);
}

main().catch((err: unknown) => {
  console.error(err);
  for (const child of children.values()) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
