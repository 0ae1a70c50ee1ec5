import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { defaultDataDir } from "../../src/config/paths.js";
import type { HealthState } from "../../src/core/health.js";
import type { WorkerView } from "../../src/core/registry.js";
import { loadState, saveState } from "../../src/manager/state-file.js";
import { describeTransition } from "../../src/mcp/notifications.js";
import { closestIds, countStates, filterWorkers, page, parseSince, pressureScore, unknownWorkerMessage } from "../../src/mcp/views.js";
import { EMPTY_METRICS } from "../../src/protocol/metrics.js";

function view(id: string, state: HealthState, extra: Partial<WorkerView> = {}): WorkerView {
  return {
    id,
    hostname: id,
    state,
    reasons: [],
    connected: state !== "offline",
    lastHeartbeatAgeMs: 100,
    connectedSince: 0,
    firstSeen: 0,
    lastSeen: 0,
    agentVersion: "1",
    labels: {},
    platform: { os: "linux", arch: "x64", release: "6" },
    address: null,
    heartbeats: 1,
    metrics: null,
    ...extra,
  };
}

describe("MCP views", () => {
  const fleet = [
    view("web-02", "healthy", { labels: { role: "web" } }),
    view("db-01", "degraded", { labels: { role: "db" } }),
    view("web-01", "unhealthy", { labels: { role: "web", zone: "a" } }),
    view("old", "offline"),
    view("web-03", "healthy"),
  ];

  it("pages problem workers first with a cursor that survives a worker joining", () => {
    const p1 = page(fleet, 2, undefined);
    assert.ok(!("error" in p1));
    assert.deepEqual(p1.items.map((v) => v.id), ["web-01", "db-01"]);
    const grown = [...fleet, view("aaa", "unhealthy")]; // sorts before everything already seen
    const p2 = page(grown, 2, p1.nextCursor!);
    assert.ok(!("error" in p2));
    assert.deepEqual(p2.items.map((v) => v.id), ["web-02", "web-03"]);
    const p3 = page(grown, 2, p2.nextCursor!);
    assert.ok(!("error" in p3));
    assert.deepEqual(p3.items.map((v) => v.id), ["old"]);
    assert.equal(p3.nextCursor, null);
    assert.ok("error" in page(fleet, 2, "garbage"));
  });

  it("filters by state and by label (key=value or key)", () => {
    assert.deepEqual(filterWorkers(fleet, { label: "role=web" }).map((v) => v.id), ["web-02", "web-01"]);
    assert.deepEqual(filterWorkers(fleet, { label: "zone" }).map((v) => v.id), ["web-01"]);
    assert.deepEqual(filterWorkers(fleet, { state: "healthy", label: "role=web" }).map((v) => v.id), ["web-02"]);
    assert.deepEqual(countStates(fleet), { healthy: 2, degraded: 1, unhealthy: 1, offline: 1, total: 5 });
  });

  it("suggests the closest known ids for a typo", () => {
    const ids = fleet.map((v) => v.id);
    assert.deepEqual(closestIds("web01", ids), ["web-01", "web-02", "web-03"]);
    assert.deepEqual(closestIds("db", ids), ["db-01"]);
    assert.deepEqual(closestIds("zzzzzzzz", ids), []);
    assert.match(unknownWorkerMessage("zzzzzzzz", ids), /Known ids: web-02, db-01/);
    assert.match(unknownWorkerMessage("x", []), /no workers are known yet/);
  });

  it("reads since as an ISO time or a duration back from now", () => {
    assert.equal(parseSince("15m", 1_000_000), 100_000);
    assert.equal(parseSince("2026-01-01T00:00:00Z", 0), Date.UTC(2026, 0, 1));
    assert.match(String(parseSince("soon", 0)), /neither an ISO time/);
  });

  it("scores pressure by the resource closest to running out", () => {
    assert.equal(pressureScore(view("a", "healthy", { metrics: { ...EMPTY_METRICS, cpu: 20, mem: 70, disk: { mount: "/", used: 91 } } })), 91);
    assert.equal(pressureScore(view("a", "healthy")), null);
  });

  it("tells transitions as MCP log levels: alarms are warnings", () => {
    const e = (from: HealthState | null, to: HealthState) => ({ seq: 1, at: 0, worker: "w", from, to, reasons: [{ code: "goodbye" as const, message: "goodbye: SIGTERM" }] });
    assert.equal(describeTransition(e("healthy", "unhealthy")).level, "warning");
    assert.equal(describeTransition(e(null, "healthy")).message, "worker w joined the fleet");
    assert.equal(describeTransition(e("unhealthy", "healthy")).message, "worker w recovered (was unhealthy)");
    assert.equal(describeTransition(e("healthy", "offline")).level, "info");
    assert.equal(describeTransition(e("healthy", "degraded")).level, "notice");
  });
});

describe("state file and data directory", () => {
  it("follows each platform's convention", () => {
    assert.equal(defaultDataDir({ XDG_DATA_HOME: "/x" }, "linux"), "/x/mcp-fleet");
    assert.match(defaultDataDir({}, "linux"), /\.local\/share\/mcp-fleet$/);
    assert.match(defaultDataDir({}, "darwin"), /Library\/Application Support\/mcp-fleet$/);
    assert.match(defaultDataDir({ LOCALAPPDATA: "C:\\Users\\u\\AppData\\Local" }, "win32"), /mcp-fleet$/);
  });

  it("saves atomically with private permissions, and loads what it saved", () => {
    const dir = mkdtempSync(join(tmpdir(), "mcp-fleet-state-"));
    try {
      const path = join(dir, "sub", "state.json");
      assert.deepEqual(loadState(path), { kind: "missing" });
      const snapshot = {
        workers: [
          { id: "w1", hostname: "h", agentVersion: "1", labels: { a: "b" }, platform: { os: "linux", arch: "x64", release: "6" }, address: null, firstSeen: 1, lastSeen: 2, state: "offline" as const, reasons: [{ code: "goodbye" as const, message: "goodbye" }] },
        ],
        events: [{ seq: 7, at: 3, worker: "w1", from: "healthy" as const, to: "offline" as const, reasons: [] }],
      };
      saveState(path, snapshot);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const loaded = loadState(path);
      assert.equal(loaded.kind, "loaded");
      assert.deepEqual((loaded as { snapshot: unknown }).snapshot, snapshot);
      writeFileSync(path, readFileSync(path, "utf8").slice(0, 20));
      const corrupt = loadState(path, new Date(0));
      assert.equal(corrupt.kind, "corrupt");
      assert.match((corrupt as { movedTo: string }).movedTo, /state\.json\.corrupt-1970-01-01T00-00-00-000Z$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
