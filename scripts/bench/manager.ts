import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { BenchCerts } from "./fleet-certs.js";
import { epochNow, raisedLimit } from "./procs.js";

const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

interface LogLine {
  /** Epoch ms (the log carries ISO time with milliseconds). */
  time: number;
  msg: string;
  [k: string]: unknown;
}

/**
 * The manager as Claude Desktop runs it, from the built CLI, spoken to with the SDK's Client over stdio; its
 * JSON log on stderr tells when it listened and when each worker changed state.
 */
export class BenchManager {
  listeningAt = 0;
  connected = 0;
  resumed = 0;
  readonly paces: Array<{ to: number; connected: number }> = [];
  /** Warnings by kind (the throttle's kind, or the message), counting those it suppressed. */
  readonly warnings: Record<string, number> = {};
  /** Epoch ms of each `host joined` line: one per enrolled host. */
  readonly joined: number[] = [];
  /** `join refused` lines by code. */
  readonly joinRefusals: Record<string, number> = {};
  /** Every transition seen: worker → [state, epoch ms]. A watcher set up after the fact still finds it. */
  private readonly transitions = new Map<string, Array<{ to: string; time: number }>>();
  private watchers: Array<{ test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  private listening!: Promise<void>;

  private constructor(
    readonly client: Client,
    private readonly transport: StdioClientTransport,
  ) {}

  /** `metrics`: the metrics listener's port on loopback, and whether it exports host figures; none: it is off. */
  static async start(certs: BenchCerts, port: number, stateFile: string, nodeArgs: string[] = [], metrics?: { port: number; hosts?: boolean }): Promise<BenchManager> {
    const argv = [
      process.execPath, ...nodeArgs, CLI, "manager",
      "--ca", certs.ca, "--cert", certs.cert, "--key", certs.key,
      "--host", "127.0.0.1", "--port", String(port), "--no-mdns",
      "--state", stateFile,
      "--metrics-listen", metrics ? `127.0.0.1:${metrics.port}` : "off",
      ...(metrics?.hosts ? ["--metrics-hosts"] : []),
      // The bench machine's own disk and memory are not what is measured.
      "--pressure-percent", "0",
    ];
    const { command, args } = raisedLimit(argv);
    const transport = new StdioClientTransport({ command, args, env: { ...process.env } as Record<string, string>, stderr: "pipe" });
    const m = new BenchManager(new Client({ name: "mcp-fleet-bench", version: "0.0.0" }, { capabilities: {} }), transport);
    m.listening = new Promise((resolve) => {
      m.watchers.push({ test: (l) => l.msg === "manager listening", resolve: () => resolve() });
    });
    createInterface({ input: transport.stderr as unknown as NodeJS.ReadableStream }).on("line", (text) => m.onLine(text));
    await m.client.connect(transport);
    await m.listening;
    return m;
  }

  private onLine(text: string): void {
    let l: LogLine;
    try {
      l = JSON.parse(text) as LogLine;
      l.time = Date.parse(l.time as unknown as string);
    } catch {
      process.stderr.write(`manager: ${text}\n`);
      return;
    }
    if (l.msg === "manager listening") this.listeningAt = l.time;
    if (l.event === "transition") {
      const list = this.transitions.get(l.worker as string) ?? [];
      list.push({ to: l.to as string, time: l.time });
      this.transitions.set(l.worker as string, list);
    }
    if (l.msg === "worker connected") {
      this.connected++;
      if (l.resumed === true) this.resumed++;
    }
    if (l.msg === "host joined") this.joined.push(l.time);
    if (l.msg === "join refused") this.joinRefusals[String(l.code)] = (this.joinRefusals[String(l.code)] ?? 0) + 1;
    if (l.msg === "heartbeat interval changed") this.paces.push({ to: Number(l.to), connected: Number(l.connected) });
    if (l.level === "error" || l.level === "fatal") process.stderr.write(`manager error: ${text}\n`);
    if (l.level === "warn") {
      const suppressed = l.msg === "suppressed similar warnings";
      const key = suppressed ? String(l.kind) : String(l.msg);
      this.warnings[key] = (this.warnings[key] ?? 0) + (suppressed ? Number(l.suppressed) : 1);
    }
    this.watchers = this.watchers.filter((w) => {
      if (!w.test(l)) return true;
      w.resolve(l);
      return false;
    });
  }

  get pid(): number {
    return this.transport.pid!;
  }

  /** The epoch time (ms) at which the manager logged `worker` entering `state`, at or after `after`. */
  transitionTime(worker: string, state: string, after: number, timeoutMs: number): Promise<number> {
    // The log has millisecond times; `after` may be a fraction later within the same millisecond.
    const seen = this.transitions.get(worker)?.find((t) => t.to === state && t.time >= Math.floor(after));
    if (seen) return Promise.resolve(seen.time);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${worker} did not become ${state} within ${timeoutMs} ms`)), timeoutMs);
      this.watchers.push({
        test: (l) => l.event === "transition" && l.worker === worker && l.to === state && l.time >= Math.floor(after),
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l.time);
        },
      });
    });
  }

  async tool(name: string, args: Record<string, unknown> = {}): Promise<{ ms: number; result: CallToolResult }> {
    const started = epochNow();
    const result = (await this.client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult;
    if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content).slice(0, 300)}`);
    return { ms: epochNow() - started, result };
  }

  async counts(): Promise<Record<string, number>> {
    const { result } = await this.tool("get_fleet_summary");
    return (result.structuredContent as { counts: Record<string, number> }).counts;
  }

  /**
   * Ends stdin, as Claude Desktop does on quit: the manager saves its state and exits. The exit is awaited here:
   * the SDK's close sends SIGTERM after 2 s and SIGKILL after 4, which lost the CPU profile a manager with
   * 10,000 workers was still writing (`--profile`).
   */
  async stop(): Promise<void> {
    const child = (this.transport as unknown as { _process?: ChildProcess })._process;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdin?.end();
      await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref())]);
    }
    await this.client.close();
  }
}
