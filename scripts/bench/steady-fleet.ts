import { pacedInterval } from "../../src/core/pace.js";
import type { BenchCerts } from "./fleet-certs.js";
import type { BenchManager } from "./manager.js";
import { epochNow, Simulator, sleep, sumStats } from "./procs.js";
import type { SimStats } from "./sim-protocol.js";

/**
 * N simulated workers (two simulator processes from 2,000 on) connected to `manager` on `port`, waited for until
 * all are healthy and beat at the interval the manager's pace gives N, then for two of those intervals more, so a
 * measurement that follows starts from the steady state. The caller stops the simulators it gets.
 */
export async function steadyFleet(manager: BenchManager, certs: BenchCerts, port: number, n: number): Promise<Simulator[]> {
  const sims = Array.from({ length: n >= 2000 ? 2 : 1 }, () => new Simulator());
  try {
    await Promise.all(sims.map((s) => s.ready));
    const per = Math.ceil(n / sims.length);
    await Promise.all(
      sims.map((s, i) =>
        s.call({ op: "start", url: `wss://127.0.0.1:${port}/worker`, mode: "manager", intervalMs: 0, resume: true, certFile: certs.workersFile, from: i * per, to: Math.min(n, (i + 1) * per), concurrency: 48 }),
      ),
    );
    const interval = pacedInterval({ baseMs: 1000, budgetPerSecond: 2000, connected: n });
    const end = epochNow() + 180_000;
    for (;;) {
      const counts = await manager.counts();
      const s = sumStats(await Promise.all(sims.map((x) => x.stats()))) as SimStats;
      if (counts.healthy === n && s.intervals[interval] === n) break;
      if (epochNow() > end) throw new Error(`not all healthy: ${JSON.stringify(counts)}`);
      await sleep(500);
    }
    await sleep(Math.max(3000, 2 * interval));
    return sims;
  } catch (err) {
    for (const s of sims) await s.stop();
    throw err;
  }
}
