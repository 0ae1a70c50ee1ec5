/**
 * `npm run demo`: a manager and three local workers with throwaway certificates. The manager is started the way
 * Claude Desktop starts it (an MCP client spawning it over stdio), and the screen is what its MCP tools answer,
 * refreshed every second. After a few seconds one worker is killed (SIGKILL) to show detection, and later started
 * again. Ctrl-C stops everything and removes the throwaway files. `npm run demo -- --for 20s` stops by itself.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { LoggingMessageNotificationSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { formatDuration, parseDuration } from "../src/config/duration.js";
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
const notes: string[] = [];

function startWorker(id: string, port: number): void {
  const child = spawn(
    process.execPath,
    [
      CLI, "worker",
      "--ca", join(dir, "ca.pem"),
      "--cert", join(dir, "workers", `${id}.pem`),
      "--key", join(dir, "workers", `${id}-key.pem`),
      "--manager", `wss://127.0.0.1:${port}`,
      "--labels", `demo=true`,
      // The demo runs on loopback with throwaway certificates: nothing to announce on your LAN.
      "--no-mdns",
      "--collect-interval", "2s",
    ],
    { stdio: ["ignore", "ignore", openSync(join(dir, `${id}.log`), "a")] },
  );
  children.set(id, child);
}

interface Row {
  id: string;
  state: string;
  reasons: Array<{ message: string }>;
  lastHeartbeatAgeMs: number | null;
  metrics: { cpu: number | null; mem: number | null; disk: { used: number } | null } | null;
}
interface Summary {
  counts: Record<string, number>;
  totalCores: number;
  totalMemoryBytes: number;
}

const pad = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + "…" : s.padEnd(n));
const pct = (v: number | null | undefined) => (v === null || v === undefined ? "-" : `${v.toFixed(0)}%`);
const COLOURS: Record<string, string> = { healthy: "32", degraded: "33", unhealthy: "31", offline: "90" };
const paint = (state: string, text: string) => (process.stdout.isTTY ? `\x1b[${COLOURS[state]}m${text}\x1b[0m` : text);

function render(rows: Row[], summary: Summary, elapsedMs: number, note: string): string {
  const c = summary.counts;
  const lines = [
    `mcp-fleet demo: what the manager's MCP tools answer (${formatDuration(elapsedMs)})`,
    note,
    "",
    `get_fleet_summary: ${c.healthy} healthy, ${c.degraded} degraded, ${c.unhealthy} unhealthy, ${c.offline} offline; ` +
      `${summary.totalCores} cores, ${(summary.totalMemoryBytes / 2 ** 30).toFixed(1)} GiB`,
    "",
    `get_all_workers_status:`,
    `  ${pad("WORKER", 10)}${pad("STATE", 11)}${pad("LAST BEAT", 11)}${pad("CPU", 6)}${pad("MEM", 6)}${pad("DISK", 6)}REASONS`,
  ];
  for (const w of rows) {
    const age = w.lastHeartbeatAgeMs === null ? "-" : formatDuration(w.lastHeartbeatAgeMs);
    lines.push(
      `  ${pad(w.id, 10)}${paint(w.state, pad(w.state, 11))}${pad(age, 11)}${pad(pct(w.metrics?.cpu), 6)}` +
        `${pad(pct(w.metrics?.mem), 6)}${pad(pct(w.metrics?.disk?.used), 6)}${w.reasons.map((r) => r.message).join("; ")}`,
    );
  }
  lines.push("", "MCP log notifications from the manager:", ...notes.slice(-6).map((n) => `  ${n}`));
  lines.push("", runFor ? `stops by itself after ${formatDuration(runFor)}` : "Ctrl-C to stop; throwaway files are removed");
  return lines.join("\n");
}

async function main(): Promise<void> {
  await initFleet({ dir, fleet: "demo" });
  for (const id of WORKERS) await issueWorker({ dir, id });

  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      CLI, "manager",
      "--ca", join(dir, "ca.pem"), "--cert", join(dir, "manager.pem"), "--key", join(dir, "manager-key.pem"),
      "--host", "127.0.0.1", "--port", "0",
      "--state", join(dir, "state.json"),
      // Disk and memory warnings depend on the machine the demo runs on; off, to keep the story clear.
      "--pressure-percent", "0",
      "--no-mdns",
      // The demo may run beside a real manager, which holds the default metrics port.
      "--metrics-listen", "off",
    ],
    env: { ...process.env } as Record<string, string>,
    stderr: "pipe",
  });
  let port = 0;
  let stderr = "";
  const listening = new Promise<void>((resolve) => {
    (transport.stderr as unknown as NodeJS.ReadableStream).on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /"port":(\d+)[^\n]*"msg":"manager listening"/.exec(stderr);
      if (m && !port) {
        port = Number(m[1]);
        resolve();
      }
      if (stderr.length > 1_000_000) stderr = stderr.slice(-10_000);
    });
  });
  const client = new Client({ name: "mcp-fleet-demo", version: "1" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    const data = n.params.data as { message?: string };
    notes.push(`${new Date().toISOString().slice(11, 19)} [${n.params.level}] ${data.message ?? JSON.stringify(data)}`);
  });
  await client.connect(transport);
  await listening;
  for (const id of WORKERS) startWorker(id, port);

  const call = async <T>(name: string, args: Record<string, unknown> = {}) =>
    ((await client.callTool({ name, arguments: args })) as CallToolResult).structuredContent as T;

  const started = performance.now();
  let note = "starting three workers...";
  let killed = false;
  let restarted = false;
  let stopping = false;

  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    for (const child of children.values()) child.kill("SIGTERM");
    await client.close(); // closing the manager's stdin is how an MCP client stops it
    rmSync(dir, { recursive: true, force: true });
    console.log(`\nstopped; removed ${dir}`);
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));

  const timer = setInterval(() => {
    void (async () => {
      const elapsed = performance.now() - started;
      if (!killed && elapsed >= KILL_AT_MS) {
        killed = true;
        children.get(VICTIM)?.kill("SIGKILL");
        note = `killed ${VICTIM} with SIGKILL at ${formatDuration(elapsed)}: watch it turn unhealthy at once`;
      }
      if (!restarted && elapsed >= RESTART_AT_MS) {
        restarted = true;
        startWorker(VICTIM, port);
        note = `started ${VICTIM} again at ${formatDuration(elapsed)}: it reconnects and is healthy again`;
      }
      const [all, summary] = await Promise.all([
        call<{ workers: Row[] }>("get_all_workers_status"),
        call<Summary>("get_fleet_summary"),
      ]);
      if (stopping) return;
      const screen = render(all.workers, summary, elapsed, note);
      process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${screen}\n` : `${screen}\n\n`);
      if (runFor !== null && elapsed >= runFor) await stop(0);
    })().catch((err: unknown) => {
      console.error(err);
      void stop(1);
    });
  }, 1000);
}

main().catch((err: unknown) => {
  console.error(err);
  for (const child of children.values()) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
