import { parentPort } from "node:worker_threads";
import si from "systeminformation";
import { FAULT_HANG_ENV, type CollectorName, type ThreadReply, type ThreadRequest } from "./collectors.js";

// systeminformation blocks its caller's event loop (execSync df, ip route, ...), so it runs here, away from the
// thread that sends heartbeats.

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

const hang = new Set((process.env[FAULT_HANG_ENV] ?? "").split(",").map((s) => s.trim()).filter(Boolean));

function reply(message: ThreadReply): void {
  parentPort?.postMessage(message);
}

parentPort?.on("message", (req: ThreadRequest) => {
  if (req.kind === "ping") return reply({ kind: "pong", id: req.id });
  if (hang.has(req.name)) {
    // Blocks this thread for good, as execSync on a dead NFS mount would.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  const call = calls[req.name];
  call().then(
    (value) => reply({ kind: "result", id: req.id, ok: true, value }),
    (err: unknown) => reply({ kind: "result", id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
