import { parentPort, workerData } from "node:worker_threads";
import si from "systeminformation";
import { toErrorCode } from "../protocol/text.js";
import { FAULT_HANG_ENV, type CollectorName, type ThreadReply, type ThreadRequest } from "./collectors.js";

// systeminformation blocks its caller's event loop (execSync df, ip route, ...), so it runs here, away from the
// thread that sends heartbeats. Calls run one at a time, each bounded by the timeout: an asynchronous hang
// costs one timeout and the queue moves on; a synchronous one blocks this thread, and the main thread can tell
// exactly which call did it, because it is the one being run.

const calls: Record<CollectorName, () => Promise<unknown>> = {
  osInfo: () => si.osInfo(),
  cpu: () => si.cpu(),
  currentLoad: () => si.currentLoad(),
  mem: () => si.mem(),
  fsSize: () => si.fsSize(),
  battery: () => si.battery(),
  networkStats: () => si.networkStats("*"),
  cpuTemperature: () => si.cpuTemperature(),
  time: () => Promise.resolve(si.time()),
  networkInterfaces: () => si.networkInterfaces(),
};

const { timeoutMs } = workerData as { timeoutMs: number };
const hang = new Set((process.env[FAULT_HANG_ENV] ?? "").split(",").map((s) => s.trim()).filter(Boolean));
/** Calls that outlived their timeout and have not settled: never started twice (single-flight). */
const running = new Map<CollectorName, { promise: Promise<unknown>; since: number }>();
const queue: Array<{ id: number; name: CollectorName }> = [];
let busy = false;

function reply(message: ThreadReply): void {
  parentPort?.postMessage(message);
}

function start(name: CollectorName): Promise<unknown> {
  if (hang.has(name)) {
    // Blocks this thread for good, as execSync on a dead NFS mount would.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  const promise = calls[name]().finally(() => running.delete(name));
  running.set(name, { promise, since: performance.now() });
  return promise;
}

async function run(id: number, name: CollectorName): Promise<void> {
  const earlier = running.get(name);
  const promise = earlier?.promise ?? start(name);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
  try {
    const value = await Promise.race([promise, timeout]);
    if (value === "timeout") {
      const age = Math.round((performance.now() - (earlier?.since ?? performance.now() - timeoutMs)) / 1000);
      const error = earlier ? `still running after ${age}s` : `no answer within ${timeoutMs}ms`;
      reply({ kind: "result", id, ok: false, error, code: "TIMEOUT" });
    } else {
      reply({ kind: "result", id, ok: true, value });
    }
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    reply({ kind: "result", id, ok: false, error: err instanceof Error ? err.message : String(err), code: toErrorCode(code, "FAILED") });
  } finally {
    clearTimeout(timer);
  }
}

async function drain(): Promise<void> {
  if (busy) return;
  busy = true;
  for (let next = queue.shift(); next; next = queue.shift()) await run(next.id, next.name);
  busy = false;
}

parentPort?.on("message", (req: ThreadRequest) => {
  if (req.kind === "ping") return reply({ kind: "pong", id: req.id });
  queue.push({ id: req.id, name: req.name });
  void drain();
});
