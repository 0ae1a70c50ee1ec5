/**
 * A fuzzer below TLS: TCP connections to the manager's port that send random bytes, sometimes dressed as the
 * start of a TLS record, until the manager drops them. Stops once it has sent `minWrites` over at least
 * `minSeconds`, or at `maxSeconds`. Prints one JSON line of statistics.
 *
 * Usage: fuzz-bytes.ts <host> <port> <minWrites> <minSeconds> <maxSeconds> <lanes> [seed]
 */
import { connect } from "node:net";
import { seeded } from "./prng.js";

const [host, port, minWrites, minSeconds, maxSeconds, lanes, seedArg] = process.argv.slice(2) as string[];
const seed = Number(seedArg ?? Date.now() % 2 ** 31);
const { rand, int } = seeded(seed);

function chunk(): Buffer {
  const body = Buffer.from(Array.from({ length: 1 + int(1500) }, () => int(256)));
  if (rand() < 0.4) {
    // A TLS handshake record header with a random length and random contents.
    return Buffer.concat([Buffer.from([0x16, 0x03, int(4), int(256), int(256)]), body]);
  }
  if (rand() < 0.1) return Buffer.from("GET /worker HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n");
  return body;
}

const started = performance.now();
const stats = { seed, writes: 0, connections: 0, elapsedMs: 0 };
const done = () =>
  (stats.writes >= Number(minWrites) && performance.now() - started >= Number(minSeconds) * 1000) ||
  performance.now() - started >= Number(maxSeconds) * 1000;

async function lane(): Promise<void> {
  while (!done()) {
    stats.connections++;
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), host);
      let timer: NodeJS.Timeout | undefined;
      const pump = () => {
        if (socket.destroyed || done()) return socket.destroy();
        socket.write(chunk());
        stats.writes++;
        timer = setTimeout(pump, int(15));
      };
      socket.on("connect", pump);
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

await Promise.all(Array.from({ length: Number(lanes) }, () => lane()));
stats.elapsedMs = Math.round(performance.now() - started);
console.log(JSON.stringify(stats));
