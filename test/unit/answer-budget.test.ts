import assert from "node:assert/strict";
import { NO_ENROLLMENT } from "../../src/enroll/disabled.js";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { FakeClock, systemClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY } from "../../src/core/health.js";
import { Registry, type SessionInfo } from "../../src/core/registry.js";
import { MAX_PEERS_PER_ROLE, type Peer } from "../../src/discovery/browser.js";
import { createJobService } from "../../src/jobs/service.js";
import { createLogger } from "../../src/log.js";
import type { Manager } from "../../src/manager/manager.js";
import { ANSWER_MAX_CHARS, estimateTokens } from "../../src/mcp/answer-budget.js";
import { createMcpServer, type FleetMcp } from "../../src/mcp/server.js";
import { COLLECTOR_NAMES, LIMITS, type MetricsSummary } from "../../src/protocol/metrics.js";
import type { FullStatus } from "../../src/protocol/status.js";

// The tools' answers at 10,000 workers, through the real tool code (McpServer and the SDK Client over the SDK's
// in-memory transport) against a real Registry on a fake clock. What is under test is the answer's size, not the
// transport: the e2e tests speak stdio to a real manager.

const N = 10_000;
const TOKEN_CAP = 25_000;
const FLEET_ID = "0123456789abcdef";

/** Every field a worker controls at the longest the wire allows. */
const longest = {
  hostname: "h".repeat(253),
  agentVersion: "v".repeat(64),
  // Keys with the longest DNS-subdomain prefix (253) and name (63); values of 63.
  labels: Object.fromEntries(
    Array.from({ length: 64 }, (_, i) => [`${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(59)}${String(i).padStart(2, "0")}/${"k".repeat(63)}`, "v".repeat(63)]),
  ),
  platform: { os: "o".repeat(32), arch: "a".repeat(32), release: "r".repeat(128) },
};
const longNumber = 99.99999999999997;
const worstMetrics: MetricsSummary = {
  cpu: longNumber,
  load1: 123456.78901234567,
  cores: 4096,
  mem: longNumber,
  memTotal: LIMITS.bytes,
  swap: longNumber,
  disk: { mount: "/".repeat(256), used: longNumber },
  battery: { percent: 1.2345678901234567, charging: false },
  net: { rx: 123456789012.34567, tx: 123456789012.34567 },
  temp: 299.99999999999994,
  uptime: LIMITS.uptime,
  errors: COLLECTOR_NAMES.map((collector) => ({ collector, code: "E".repeat(32) })),
};
// Each string at the longest its class allows at the wire: names 48, tokens 64, paths 256.
const name48 = "n".repeat(48);
const token64 = "t".repeat(64);
const path256 = "p".repeat(256);
const maxBytes = 2 ** 60;
const worstStatus: FullStatus = {
  collectedAt: new Date(0).toISOString(),
  hostname: longest.hostname,
  os: { platform: token64, distro: name48, release: name48, kernel: token64, arch: token64 },
  cpu: { manufacturer: name48, brand: name48, cores: 4096, physicalCores: 4096, speedGHz: longNumber },
  load: { currentPercent: longNumber, perCore: Array(4096).fill(longNumber), average: [longNumber, longNumber, longNumber] },
  memory: { total: maxBytes, used: maxBytes, active: maxBytes, available: maxBytes, swapTotal: maxBytes, swapUsed: maxBytes },
  filesystems: Array.from({ length: 512 }, () => ({ fs: path256, type: token64, mount: path256, size: maxBytes, used: maxBytes, usePercent: longNumber })),
  network: Array.from({ length: 512 }, () => ({ iface: token64, operstate: token64, ip4: token64, ip6: token64, mac: token64, rxBytesPerSec: longNumber, txBytesPerSec: longNumber })),
  battery: { hasBattery: true, percent: longNumber, isCharging: false, acConnected: false },
  temperatures: { main: longNumber, max: longNumber, cores: Array(4096).fill(longNumber) },
  uptimeSec: LIMITS.uptime,
  errors: Array.from({ length: 64 }, () => ({ source: "snapshot" as const, code: "E".repeat(32) })),
};

const typicalMetrics: MetricsSummary = {
  cpu: 12.5,
  load1: 0.52,
  cores: 8,
  mem: 41.3,
  memTotal: 16_777_216_000,
  swap: 0,
  disk: { mount: "/", used: 51.2 },
  battery: null,
  net: { rx: 15321.4, tx: 2210.9 },
  temp: 48,
  uptime: 864_000,
  errors: [],
};
const typicalStatus: FullStatus = {
  ...worstStatus,
  hostname: "host-00001.lan",
  os: { platform: "linux", distro: "Debian GNU/Linux", release: "12", kernel: "6.1.0-18-amd64", arch: "x64" },
  cpu: { manufacturer: "AMD", brand: "EPYC 7763 64-Core Processor", cores: 8, physicalCores: 4, speedGHz: 2.45 },
  load: { currentPercent: 12.5, perCore: [10.2, 14.8, 9.1, 16.3, 12.0, 11.7, 13.4, 12.5], average: [0.52, 0.61, 0.58] },
  filesystems: ["/", "/boot", "/var"].map((mount) => ({ fs: "/dev/sda1", type: "ext4", mount, size: 107_374_182_400, used: 54_975_581_388, usePercent: 51.2 })),
  network: [{ iface: "eth0", operstate: "up", ip4: "10.0.0.1", ip6: "fe80::1", mac: "52:54:00:12:34:56", rxBytesPerSec: 15321.4, txBytesPerSec: 2210.9 }],
  battery: { hasBattery: false, percent: null, isCharging: null, acConnected: null },
  temperatures: { main: 48, max: 55, cores: [47, 48, 49, 48] },
  errors: [],
};

/** A worker id of the longest kind: 63 characters. */
const longId = (i: number) => `${"w".repeat(57)}-${String(i).padStart(5, "0")}`;

interface Fleet {
  registry: Registry;
  peers: Peer[];
  status: FullStatus;
}

/**
 * N workers on a real registry. Worst case: every worker-controlled field at its longest, metrics that raise every
 * reason a heartbeat can, a certificate about to expire, flapping sessions; a tenth lost and a tenth gone offline,
 * and a thousand LAN announcers with the longest names. Typical: short ids, one label, plain metrics.
 */
function makeFleet(kind: "worst" | "typical"): Fleet {
  const clock = new FakeClock();
  const registry = new Registry({ clock, policy: DEFAULT_POLICY });
  const worst = kind === "worst";
  for (let i = 0; i < N; i++) {
    const id = worst ? longId(i) : `host-${String(i).padStart(5, "0")}`;
    const info: SessionInfo = {
      id,
      sessionId: `${id}/1`,
      ...(worst ? longest : { hostname: `${id}.lan`, agentVersion: "0.1.0", labels: { role: i % 2 ? "web" : "db" }, platform: { os: "linux", arch: "x64", release: "6.1.0" } }),
      address: worst ? "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" : "10.0.0.1",
      certNotAfter: worst ? clock.wall() + 3_600_000 : null,
    };
    const sessions = worst ? 5 : 1;
    for (let s = 1; s <= sessions; s++) registry.sessionOpened({ ...info, sessionId: `${id}/${s}` });
    const sessionId = `${id}/${sessions}`;
    registry.heartbeat(id, sessionId, 1, worst ? worstMetrics : typicalMetrics);
    if (i % 10 === 1) registry.sessionClosed(id, sessionId, worst ? "x".repeat(500) : "reset");
    if (i % 10 === 2) registry.goodbye(id, sessionId, worst ? "x".repeat(500) : "SIGTERM");
  }
  const peers: Peer[] = worst
    ? Array.from({ length: 1000 }, (_, i) => ({
        fqdn: "f".repeat(253),
        name: "n".repeat(63),
        host: `${"a".repeat(240)}${i}.local`,
        port: 7443,
        addresses: Array.from({ length: 32 }, () => "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"),
        announcement: { role: "worker", fleet: i % 2 ? FLEET_ID : "fedcba9876543210", protocol: 1, id: `${"u".repeat(56)}-${String(i).padStart(6, "0")}`, version: "v".repeat(64) },
        lastSeen: performance.now() - i,
      }))
    : [];
  return { registry, peers, status: worst ? worstStatus : typicalStatus };
}

function fakeManager(fleet: Fleet): Manager {
  return {
    registry: fleet.registry,
    joins: NO_ENROLLMENT,
    port: 0,
    fleet: "test",
    fleetId: FLEET_ID,
    workerAnnouncements: () => fleet.peers,
    reloadCrl: async () => {},
    onEvent: () => () => {},
    request: (async () => fleet.status) as Manager["request"],
    connected: () => false,
    jobs: createJobService({ registry: fleet.registry, link: { request: (() => Promise.reject(new Error("no workers"))) as never, connected: () => false }, onCatalog: () => () => {}, clock: systemClock, log: createLogger({ name: "test", level: "silent" }) }),
    onCatalog: () => () => {},
    close: async () => {},
  };
}

async function connect(fleet: Fleet): Promise<{ client: Client; mcp: FleetMcp }> {
  const mcp = createMcpServer(fakeManager(fleet), { requestTimeoutMs: 1000, log: createLogger({ name: "test", level: "silent" }) });
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
  await mcp.server.connect(serverSide);
  const client = new Client({ name: "answer-budget-test", version: "0" });
  await client.connect(clientSide);
  return { client, mcp };
}

/** Calls a tool and returns its text's length and its structured content; every answer is checked against the cap. */
async function sized(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ chars: number; data: Record<string, unknown> }> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = (r.content[0] as { text: string }).text;
  assert.notEqual(r.isError, true, `${name} ${JSON.stringify(args)}: ${text.slice(0, 300)}`);
  assert.ok(text.length <= ANSWER_MAX_CHARS, `${name} ${JSON.stringify(args)}: ${text.length} characters`);
  assert.ok(estimateTokens(text.length) <= TOKEN_CAP);
  return { chars: text.length, data: r.structuredContent as Record<string, unknown> };
}

const DEFAULT_CALLS: Array<[string, Record<string, unknown>]> = [
  ["list_workers", {}],
  ["get_worker_status", { worker_id: "" }],
  ["get_all_workers_status", {}],
  ["get_fleet_summary", {}],
  ["get_worker_events", {}],
];

describe(`tool answers at ${N.toLocaleString("en")} workers stay within the budget`, () => {
  let worst: { client: Client; mcp: FleetMcp; fleet: Fleet };
  let typical: { client: Client; mcp: FleetMcp; fleet: Fleet };
  before(async () => {
    const w = makeFleet("worst");
    worst = { ...(await connect(w)), fleet: w };
    const t = makeFleet("typical");
    typical = { ...(await connect(t)), fleet: t };
  });
  after(async () => {
    for (const f of [worst, typical]) {
      await f?.client.close();
      await f?.mcp.close();
    }
  });

  const firstId = (f: Fleet) => f.registry.list()[0]!.id;

  it("with default arguments, a typical fleet's answers are under 50,000 characters and its pages are full", async (t) => {
    for (const [name, args] of DEFAULT_CALLS) {
      const { chars } = await sized(typical.client, name, name === "get_worker_status" ? { worker_id: firstId(typical.fleet) } : args);
      t.diagnostic(`${name}: ${chars} characters (~${estimateTokens(chars)} tokens)`);
    }
    const list = await sized(typical.client, "list_workers");
    assert.equal((list.data.workers as unknown[]).length, 100, "the default page of 100 rows fits");
    assert.deepEqual(list.data.counts, { healthy: 8000, degraded: 0, unhealthy: 1000, offline: 1000, total: N });
    const all = await sized(typical.client, "get_all_workers_status");
    assert.equal((all.data.workers as unknown[]).length, 100);
    const events = await sized(typical.client, "get_worker_events");
    assert.equal((events.data.events as unknown[]).length, 50);
  });

  it("with default arguments, the worst-case fleet's answers are under 50,000 characters", async (t) => {
    for (const [name, args] of DEFAULT_CALLS) {
      const { chars } = await sized(worst.client, name, name === "get_worker_status" ? { worker_id: firstId(worst.fleet) } : args);
      t.diagnostic(`${name}: ${chars} characters (~${estimateTokens(chars)} tokens)`);
    }
  });

  it("no argument takes an answer past the cap: the largest pages, full statuses asked now, every filter", async () => {
    const id = firstId(worst.fleet);
    const calls: Array<[string, Record<string, unknown>]> = [
      ["list_workers", { limit: 500 }],
      ["list_workers", { limit: 500, state: "degraded" }],
      ["list_workers", { limit: 500, label: Object.keys(longest.labels)[0] }],
      ["get_worker_status", { worker_id: id }],
      ["get_worker_status", { worker_id: id, fresh: false }],
      ["get_all_workers_status", { limit: 500 }],
      ["get_all_workers_status", { limit: 500, fresh: true }],
      ["get_all_workers_status", { fresh: true }],
      ["get_worker_events", { limit: 500 }],
      ["get_worker_events", { limit: 500, worker_id: id }],
    ];
    for (const [name, args] of calls) await sized(worst.client, name, args);
  });

  it("a page the budget ends early still leads, cursor by cursor, to every matching worker once", async () => {
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { data } = await sized(worst.client, "list_workers", { limit: 500, state: "unhealthy", ...(cursor ? { cursor } : {}) });
      const rows = data.workers as Array<{ id: string; labels: Record<string, string>; moreLabels?: number }>;
      assert.ok(rows.length > 0 && rows.length < 500, "the budget, not the limit, ends these pages");
      for (const r of rows) {
        assert.ok(!seen.has(r.id), `${r.id} seen twice`);
        seen.add(r.id);
      }
      assert.equal(rows[0]!.moreLabels, 48, "a row shows 16 labels and counts the rest");
      cursor = data.nextCursor as string | null;
      pages++;
    } while (cursor && pages < 2000);
    assert.equal(seen.size, N / 10, "the lost tenth of the fleet");
  });

  it("a worst-case worker's full status is cut to fit, and says what was left out", async () => {
    const { data } = await sized(worst.client, "get_worker_status", { worker_id: firstId(worst.fleet) });
    const status = data.status as FullStatus;
    assert.equal(data.source, "worker");
    assert.ok(status.filesystems!.length > 0 && status.network!.length > 0, "the status is there, shortened");
    assert.ok((data.omitted as string[]).some((o) => /^status\.filesystems: \d+ of 512 not shown$/.test(o)), JSON.stringify(data.omitted));
    const reported = (data.worker as { reported: { labels: Record<string, string> } }).reported;
    assert.equal(Object.keys(reported.labels).length, 64, "get_worker_status shows every label");
  });

  it("unverified announcements are capped, with their total; the fleet://workers resource is bounded too", async () => {
    const { data } = await sized(worst.client, "list_workers");
    assert.equal((data.unverified as unknown[]).length, 20);
    assert.equal(data.unverifiedTotal, MAX_PEERS_PER_ROLE, "the discovery keeps at most this many of the 1,000 announcers");
    const res = await worst.client.readResource({ uri: "fleet://workers" });
    const text = (res.contents[0] as { text: string }).text;
    assert.ok(text.length <= ANSWER_MAX_CHARS, `fleet://workers: ${text.length} characters`);
    assert.equal(JSON.parse(text).total, N);
    const listed = await worst.client.listResources();
    assert.ok(JSON.stringify(listed).length <= ANSWER_MAX_CHARS, "resources/list is bounded");
  });

  it("tools/list for the whole tool set is under 32 KB", async () => {
    const listed = await worst.client.listTools();
    assert.deepEqual(
      listed.tools.map((t) => t.name).sort(),
      [
        "approve_join",
        "cancel_job",
        "deny_join",
        "forget_worker",
        "get_all_workers_status",
        "get_fleet_summary",
        "get_job",
        "get_worker_events",
        "get_worker_status",
        "list_actions",
        "list_join_requests",
        "list_workers",
        "run_action",
      ],
      "the action and join tools are counted too",
    );
    const size = JSON.stringify(listed).length;
    assert.ok(size < 32 * 1024, `${size} characters`);
  });
});
