import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderTable, stormFloorS, type SizeResult } from "../../scripts/bench/report.js";

const bareStorm = (serverCpuS: number, simulatorsCpuS: number) => ({ seconds: 1, curve: {}, serverCpuS, simulatorsCpuS, stealS: 0, failures: {}, resumed: 0, handshakes: 0 });

describe("the bench's storm floor", () => {
  it("is the bare storm's CPU spread over the cores, or the server's one thread if that is longer", () => {
    // Figures of a full-handshake storm at 10,000 on the project's machine.
    assert.equal(stormFloorS(bareStorm(19.2, 22.3), 2), 20.75);
    assert.equal(stormFloorS(bareStorm(30, 10), 2), 30);
    assert.equal(stormFloorS(bareStorm(8, 12), 4), 8);
  });

  const steady = { windowAt: 0, cpuPerHeartbeatUs: 80, partsUs: [], rss: 1e9, heartbeats: 1, cpuPercent: 10, threadsUsPerHeartbeat: {}, stealS: 0 };
  const storm = { seconds: 25, curve: {}, managerCpuS: 20, simulatorsCpuS: 20, stealS: 0, failures: {}, warnings: {}, resumed: 0, handshakes: 10_000, sessions: 10_000, healthy: 10_000 };
  const result = (answers: Record<string, { chars: number; tokens: number }>, listP50 = 1) =>
    ({
      n: 10_000,
      baseline: { ...steady, idleRss: 1e8, rssPerWorker: 57_000, openMs: 1, stormResumed: bareStorm(8, 11), stormFull: bareStorm(19.2, 22.3) },
      manager: {
        ...steady, idleRss: 1e8, rssPerWorker: 63_000, rssAfterStorms: 1e9, openMs: 1, intervalMs: 5000, boundMs: 15_000, paces: [],
        listWorkers: { calls: 1, p50: listP50, p99: 1, bytes: 1 }, allStatus: { calls: 1, p50: 1, p99: 1, bytes: 1 }, answers,
        killedMs: [1], killedStealMs: [0], frozenMs: [15_100], detectionStealS: 0, stormResumed: storm, stormFull: storm,
        fanOut: { targets: 10_000, seconds: 12.5, succeeded: 10_000, counts: { succeeded: 10_000 }, managerCpuS: 9, rssGrowth: 70 * 2 ** 20, rssRetained: 30 * 2 ** 20, unhealthy: 0, progressNotifications: 10_000 },
        scrape: { calls: 10, p50: 180, max: 1250, bytes: 1_400_000, samples: 10_200, cpuMs: 150 },
      },
    }) as SizeResult;
  const machine = { cpu: "test", cores: 2, memoryGiB: 1, kernel: "k", node: "v20", openssl: "3", openFileLimit: { hard: 20_000 } };

  it("says in the table which storm target the bare transport cannot reach at the target size", () => {
    const table = renderTable([result({})], machine);
    assert.match(table, /\| … fastest storm this machine allows[^|]*\| 9\.5 s, 20\.8 s \| ≤ 20 s \| the full-handshake storm is not within reach of the bare transport here \|/);
  });

  it("judges the fan-out's time and memory at the target size", () => {
    const table = renderTable([result({})], machine);
    assert.match(table, /\| no-op action on every worker \(max_concurrency 1,000\): all results in \| 12\.5 s \(10,000 of 10,000 succeeded[^|]*\| ≤ 10 s \| \*\*missed\*\* by 2\.5 s \(25%\) \|/);
    assert.match(table, /\| … manager RSS growth meanwhile \(1 KiB of output each\): peak; after a collection \| 70 MB; 30 MB \| ≤ 64 MB \| \*\*missed\*\* by 6 MB \|/);
  });

  it("judges the slowest /metrics scrape at the target size, and leaves older results without one blank", () => {
    assert.match(renderTable([result({})], machine), /\| `GET \/metrics` p50 \/ max; body; manager CPU per scrape \| 180 ms \/ 1250 ms; 1367 KB, 10,200 samples; 150 ms \(10 scrapes\) \| ≤ 1000 ms \| \*\*missed\*\* by 250 ms \(25%\) \|/);
    const old = result({});
    delete old.manager.scrape;
    assert.match(renderTable([old], machine), /\| `GET \/metrics` p50 \/ max; body; manager CPU per scrape \| – \| ≤ 1000 ms \| {2}\|/);
  });

  it("has a row per tool for its answer's size, judged against the budget, and list_workers' p50 against its target", () => {
    const table = renderTable([result({ list_workers: { chars: 14_068, tokens: 3517 }, get_all_workers_status: { chars: 50_312, tokens: 12_578 } }, 61)], machine);
    assert.match(table, /\| `list_workers` answer, default arguments \| 14,068 chars \(~3,517 tokens\) \| < 50,000 chars \| met \|/);
    assert.match(table, /\| `get_all_workers_status` answer, default arguments \| 50,312 chars \(~12,578 tokens\) \| < 50,000 chars \| \*\*missed\*\* by 312 chars \|/);
    assert.match(table, /\| `list_workers` \(default limit 100\) p50 \/ p99 \| 61 ms \/ 1\.0 ms \(1 calls\) \| p50 ≤ 50 ms \| \*\*missed\*\* by 11 ms \(22%\) \|/);
  });
});
