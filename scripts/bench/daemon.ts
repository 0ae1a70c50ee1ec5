import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { connectToManager } from "../../src/client/connect.js";
import { issueCertificate } from "../../src/pki/generate.js";
import type { BenchCerts } from "./fleet-certs.js";
import { epochNow, raisedLimit, sleep } from "./procs.js";
import { percentile } from "./report.js";

const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

/** An operator's certificate for the bench's fleet, made once and kept beside the others. */
async function benchOperator(certs: BenchCerts): Promise<{ cert: string; key: string }> {
  const cert = join(certs.dir, "bench-operator.pem");
  const key = join(certs.dir, "bench-operator-key.pem");
  if (!existsSync(cert) || !existsSync(key)) {
    const ca = { certPem: readFileSync(certs.ca, "utf8"), keyPem: readFileSync(join(certs.dir, "ca-key.pem"), "utf8") };
    const issued = await issueCertificate({ ca, identity: { fleet: "bench", role: "operator", id: "bench" }, days: 365 });
    writeFileSync(cert, issued.certPem);
    writeFileSync(key, issued.keyPem, { mode: 0o600 });
  }
  return { cert, key };
}

export interface HttpLatency {
  listWorkers: { calls: number; p50: number; p99: number; bytes: number };
  allStatus: { calls: number; p50: number; p99: number; bytes: number };
}

/**
 * The same fleet's manager started again as a service (`manager --daemon`, same port and state file), its
 * workers back, and the two latency figures of the stdio phase measured again over MCP over HTTP with an
 * operator's certificate (src/client/connect.ts). `stop` ends the daemon (SIGTERM) and waits for its exit.
 */
export async function daemonLatency(
  certs: BenchCerts,
  port: number,
  stateFile: string,
  expected: number,
  calls: number,
  say: (s: string) => void,
): Promise<HttpLatency & { stop: () => Promise<void> }> {
  const operator = await benchOperator(certs);
  const argv = [
    process.execPath, CLI, "manager", "--daemon",
    "--ca", certs.ca, "--cert", certs.cert, "--key", certs.key,
    "--host", "127.0.0.1", "--port", String(port), "--no-mdns", "--state", stateFile, "--pressure-percent", "0", "--metrics-listen", "off",
  ];
  const { command, args } = raisedLimit(argv);
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await Promise.race([exited, sleep(30_000)]);
  };
  let client: Client | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the daemon did not listen within 60 s")), 60_000);
      createInterface({ input: child.stderr! }).on("line", (text) => {
        if (text.includes('"msg":"manager listening"')) {
          clearTimeout(timer);
          resolve();
        }
        if (text.includes('"level":"error"') || text.includes('"level":"fatal"')) process.stderr.write(`daemon error: ${text}\n`);
      });
      child.once("exit", () => reject(new Error("the daemon exited before it listened")));
    });
    // The operator's connection queues for a TLS handshake with the whole fleet's reconnect storm, and at 10,000
    // workers the queue's bound may reset it: tried again (bounded), and the refusals reported.
    const connectBy = epochNow() + 120_000;
    let refused = 0;
    for (;;) {
      try {
        client = await connectToManager({ url: `https://127.0.0.1:${port}/mcp`, ca: certs.ca, ...operator, clientInfo: { name: "mcp-fleet-bench", version: "0.0.0" } });
        break;
      } catch (err) {
        refused++;
        if (epochNow() > connectBy) throw new Error(`no MCP session with the daemon within 120 s (${refused} attempts): ${String(err)}`);
        await sleep(1000);
      }
    }
    if (refused > 0) say(`    the operator's first ${refused} connection attempt(s) failed during the workers' reconnect storm`);
    const tool = async (name: string, a: Record<string, unknown> = {}) => {
      const started = epochNow();
      const r = (await client!.callTool({ name, arguments: a }, undefined, { timeout: 120_000 })) as CallToolResult;
      if (r.isError) throw new Error(`${name} failed over HTTP: ${JSON.stringify(r.content).slice(0, 300)}`);
      return { ms: epochNow() - started, r };
    };
    const deadline = epochNow() + 120_000;
    for (;;) {
      const { r } = await tool("get_fleet_summary");
      const connected = (r.structuredContent as { connected: number }).connected;
      if (connected >= expected) break;
      if (epochNow() > deadline) throw new Error(`only ${connected} of ${expected} workers back at the daemon after 120 s`);
      await sleep(250);
    }
    say(`  MCP over HTTP (--daemon, operator certificate): all ${expected} workers back; latency`);
    const latency = async (name: string, a: Record<string, unknown>) => {
      const ms: number[] = [];
      let bytes = 0;
      for (let i = 0; i < calls; i++) {
        const { ms: took, r } = await tool(name, a);
        ms.push(took);
        bytes = JSON.stringify(r).length;
      }
      return { calls, p50: percentile(ms, 50), p99: percentile(ms, 99), bytes };
    };
    const listWorkers = await latency("list_workers", {});
    const allStatus = await latency("get_all_workers_status", { limit: 100 });
    await client.close();
    return { listWorkers, allStatus, stop };
  } catch (err) {
    await client?.close().catch(() => {});
    await stop();
    throw err;
  }
}
