/**
 * An authenticated fuzzer: real worker certificates, real TLS, then random and mutated frames until the manager
 * cuts the session off, then again. Stops once it has sent `minFrames` over at least `minSeconds`, or at
 * `maxSeconds` whatever happened. Prints one JSON line of statistics. Seeded, so a failure can be replayed.
 *
 * Usage: fuzz-frames.ts <url> <ca> <certs-dir> <ids,comma,separated> <minFrames> <minSeconds> <maxSeconds> <lanes> [seed]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket, type ClientOptions } from "ws";
import { seeded } from "./prng.js";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

const [url, caPath, dir, idList, minFrames, minSeconds, maxSeconds, lanes, seedArg] = process.argv.slice(2) as string[];
const ids = idList!.split(",");
const seed = Number(seedArg ?? Date.now() % 2 ** 31);

const { rand, int, pick } = seeded(seed);

const metrics = { cpu: 12, load1: 0.5, cores: 2, mem: 40, memTotal: 1e9, swap: 0, disk: { mount: "/", used: 50 }, battery: null, net: { rx: 1, tx: 2 }, temp: 40, uptime: 100, errors: [] };
const valid = (id: string) => [
  { type: "hello", protocol: PROTOCOL_VERSION, id, hostname: "fuzz", agentVersion: "0", labels: {}, platform: { os: "linux", arch: "x64", release: "1" } },
  { type: "heartbeat", seq: int(1e6), metrics },
  { type: "response", id: int(100), result: { anything: true } },
  { type: "response", id: "x", error: { code: "e", message: "m" } },
  { type: "progress", id: int(100), progress: 1 },
  { type: "goodbye", reason: "shutdown" },
];
const weird = [null, true, -1, 1e308, -0, "", "\u0000", "\ud800", "💥".repeat(50), [], {}, { __proto__: { polluted: 1 } }, "constructor", NaN];

function mutateValue(v: unknown, depth = 0): unknown {
  if (depth > 4 || rand() < 0.3) return pick(weird);
  if (Array.isArray(v)) return v.map((x) => mutateValue(x, depth + 1));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (rand() > 0.1) out[rand() < 0.05 ? pick(["type", "__proto__", "id", "zz"]) : k] = rand() < 0.5 ? mutateValue(x, depth + 1) : x;
    return out;
  }
  return v;
}

function frame(id: string): string | Buffer {
  const base = JSON.stringify(pick(valid(id)));
  switch (int(10)) {
    case 0: return Buffer.from(Array.from({ length: int(512) }, () => int(256))); // binary garbage
    case 1: return Array.from({ length: int(300) }, () => String.fromCharCode(int(0xffff))).join(""); // text garbage
    case 2: { const b = Buffer.from(base); for (let i = 0; i < 1 + int(4); i++) b[int(b.length)] = int(256); return b.toString("latin1"); } // byte flips
    case 3: return base.slice(0, int(base.length)); // truncated
    case 4: return JSON.stringify(mutateValue(JSON.parse(base))); // structure-aware mutation
    case 5: return "[".repeat(20_000 + int(20_000)) + "]".repeat(int(100)); // deep nesting
    case 6: return JSON.stringify({ type: "heartbeat", seq: 1, metrics: { ...metrics, errors: Array(20).fill("x".repeat(300)) } }); // over-long fields
    case 7: return "x".repeat(60 * 1024 + int(20 * 1024)); // around the frame limit
    default: return base; // valid
  }
}

const ca = readFileSync(caPath!);
const started = performance.now();
const stats = { seed, frames: 0, sessions: 0, closeCodes: {} as Record<string, number>, errors: 0, elapsedMs: 0 };
const done = () =>
  (stats.frames >= Number(minFrames) && performance.now() - started >= Number(minSeconds) * 1000) ||
  performance.now() - started >= Number(maxSeconds) * 1000;

async function lane(n: number): Promise<void> {
  const id = ids[n % ids.length]!;
  const options = {
    ca,
    cert: readFileSync(join(dir!, "workers", `${id}.pem`)),
    key: readFileSync(join(dir!, "workers", `${id}-key.pem`)),
    checkServerIdentity: () => undefined,
    perMessageDeflate: false,
  } as unknown as ClientOptions;
  while (!done()) {
    stats.sessions++;
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(`${url}/worker`, options);
      let timer: NodeJS.Timeout | undefined;
      const pump = () => {
        if (ws.readyState !== WebSocket.OPEN || done()) return ws.terminate();
        for (let i = 1 + int(8); i > 0 && ws.readyState === WebSocket.OPEN; i--) {
          ws.send(frame(id));
          stats.frames++;
        }
        timer = setTimeout(pump, int(20));
      };
      ws.on("open", () => {
        if (rand() < 0.8) ws.send(JSON.stringify(valid(id)[0]));
        pump();
      });
      ws.on("error", () => stats.errors++);
      ws.on("close", (code) => {
        clearTimeout(timer);
        stats.closeCodes[code] = (stats.closeCodes[code] ?? 0) + 1;
        resolve();
      });
    });
  }
}

await Promise.all(Array.from({ length: Number(lanes) }, (_, i) => lane(i)));
stats.elapsedMs = Math.round(performance.now() - started);
console.log(JSON.stringify(stats));
