import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { z } from "zod";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY } from "../../src/core/health.js";
import { Registry, type SessionInfo } from "../../src/core/registry.js";
import { instrumentTools } from "../../src/mcp/tool-metrics.js";
import { closeCause, REFUSAL_CAUSES, tlsCause } from "../../src/metrics/causes.js";
import { FleetMetrics } from "../../src/metrics/fleet-metrics.js";
import { labelName, MAX_LABEL_VALUE, MAX_WORKER_LABELS, workerLabels } from "../../src/metrics/labels.js";
import { MetricsListen } from "../../src/metrics/listen-address.js";
import { CloseCode } from "../../src/protocol/close-codes.js";
import { EMPTY_METRICS, type MetricsSummary } from "../../src/protocol/metrics.js";

const policy = { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000, missedHeartbeats: 3, pressurePercent: 0 };

function session(id: string, labels: Record<string, string> = {}): SessionInfo {
  return {
    id,
    sessionId: `${id}-s1`,
    hostname: `${id}.lan`,
    agentVersion: "1.0.0",
    labels,
    platform: { os: "linux", arch: "x64", release: "6.1" },
    address: "10.0.0.1",
    certNotAfter: null,
  };
}

const FIGURES: MetricsSummary = {
  ...EMPTY_METRICS,
  cpu: 12.5,
  load1: 0.75,
  cores: 4,
  mem: 40,
  memTotal: 8 * 2 ** 30,
  disk: { mount: "/", used: 61 },
  net: { rx: 1000, tx: 2000 },
};

/** The exposition's sample lines as name{labels} → value. */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe("metric labels", () => {
  it("turn worker label keys into Prometheus label names under label_", () => {
    assert.equal(labelName("role"), "label_role");
    assert.equal(labelName("example.com/rack-id"), "label_example_com_rack_id");
    assert.match(labelName("9lives"), /^[a-zA-Z_][a-zA-Z0-9_]*$/);
    // Never Prometheus's reserved __ names, nor the metric's own `worker` label.
    assert.equal(labelName("_x"), "label__x");
    assert.equal(labelName("worker"), "label_worker");
  });

  it("keep the first of keys that collide, at most MAX_WORKER_LABELS, and values cut to length", () => {
    assert.deepEqual(workerLabels({ "a.b": "1", "a-b": "2", role: "db" }), { label_a_b: "2", label_role: "db" });
    const many = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${String(i).padStart(2, "0")}`, "v"]));
    const kept = workerLabels(many);
    assert.equal(Object.keys(kept).length, MAX_WORKER_LABELS);
    assert.ok("label_k00" in kept && !("label_k63" in kept));
    assert.equal(workerLabels({ long: "x".repeat(200) }).label_long!.length, MAX_LABEL_VALUE);
  });
});

describe("refusal causes", () => {
  it("name every close code the manager sends from the fixed set, and nothing else", () => {
    const causes = new Set<string>(REFUSAL_CAUSES);
    for (const code of Object.values(CloseCode)) {
      const cause = closeCause(code);
      if (code === CloseCode.WELCOME_TIMEOUT) assert.equal(cause, null, "4011 is the worker's");
      else assert.ok(cause && causes.has(cause), `close code ${code} → ${cause}`);
    }
    assert.equal(closeCause(CloseCode.HELLO_TIMEOUT), "hello_timeout");
    assert.equal(closeCause(1000), null);
    assert.equal(closeCause(1001), null);
    assert.equal(closeCause(4999), "other");
  });

  it("group TLS verdicts, however worded, into a few causes", () => {
    assert.equal(tlsCause("CERT_HAS_EXPIRED"), "tls_expired");
    assert.equal(tlsCause("CERT_NOT_YET_VALID"), "tls_expired");
    assert.equal(tlsCause("CERT_REVOKED"), "tls_revoked");
    assert.equal(tlsCause("UNABLE_TO_VERIFY_LEAF_SIGNATURE"), "tls_untrusted");
    assert.equal(tlsCause("DEPTH_ZERO_SELF_SIGNED_CERT"), "tls_untrusted");
    assert.equal(tlsCause("UNABLE_TO_GET_ISSUER_CERT_LOCALLY"), "tls_untrusted");
    assert.equal(tlsCause("no client certificate"), "tls_no_certificate");
    assert.equal(tlsCause("Error: something a peer made up " + "x".repeat(500)), "tls_other");
  });
});

describe("--metrics-listen", () => {
  it("reads host:port, [v6]:port and off", () => {
    assert.deepEqual(MetricsListen.parse("127.0.0.1:9464"), { host: "127.0.0.1", port: 9464 });
    assert.deepEqual(MetricsListen.parse("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(MetricsListen.parse("localhost:80"), { host: "localhost", port: 80 });
    assert.equal(MetricsListen.parse("off"), null);
    for (const bad of ["9464", "127.0.0.1", "127.0.0.1:70000", "::1:9464", "", "a b:1"]) assert.equal(MetricsListen.safeParse(bad).success, false, bad);
  });
});

describe("fleet metrics", () => {
  it("are read from the registry when scraped", async () => {
    const clock = new FakeClock();
    const registry = new Registry({ clock, policy });
    const metrics = new FleetMetrics({ hosts: true, defaults: false });
    metrics.attach({ registry, sessionsOpen: () => 3 });
    registry.sessionOpened(session("w1", { role: "db", "example.com/rack": "r1" }));
    registry.sessionOpened(session("w2"));
    registry.sessionOpened(session("w3"));
    registry.heartbeat("w1", "w1-s1", 1, FIGURES);
    registry.heartbeat("w2", "w2-s1", 1, EMPTY_METRICS);
    registry.heartbeat("w3", "w3-s1", 1, FIGURES);
    registry.sessionClosed("w3", "w3-s1", "gone");
    metrics.refused("hello_timeout");
    metrics.jobEnded("succeeded");
    metrics.invocationEnded("timed_out");
    metrics.notification("transition", "coalesced");

    const { body, contentType } = await metrics.render();
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    const s = samples(body);
    assert.equal(s.get('mcp_fleet_workers{state="healthy"}'), 2);
    assert.equal(s.get('mcp_fleet_workers{state="unhealthy"}'), 1);
    assert.equal(s.get('mcp_fleet_workers{state="offline"}'), 0);
    assert.equal(s.get('mcp_fleet_worker_up{worker="w1",label_example_com_rack="r1",label_role="db"}'), 1);
    assert.equal(s.get('mcp_fleet_worker_up{worker="w2"}'), 1);
    assert.equal(s.get('mcp_fleet_worker_up{worker="w3"}'), 0);
    assert.equal(s.get("mcp_fleet_heartbeats_received_total"), 3);
    assert.equal(s.get("mcp_fleet_sessions_open"), 3);
    assert.equal(s.get('mcp_fleet_refused_total{cause="hello_timeout"}'), 1);
    assert.equal(s.get('mcp_fleet_refused_total{cause="tls_expired"}'), 0, "every cause is there from the start");
    assert.equal(s.get('mcp_fleet_jobs_total{status="succeeded"}'), 1);
    assert.equal(s.get('mcp_fleet_invocations_total{status="timed_out"}'), 1);
    assert.equal(s.get('mcp_fleet_notifications_total{kind="transition",outcome="coalesced"}'), 1);
    // Host figures: connected workers only, and only the figures they reported.
    assert.equal(s.get('mcp_fleet_host_cpu_percent{worker="w1"}'), 12.5);
    assert.equal(s.get('mcp_fleet_host_disk_used_percent{worker="w1"}'), 61);
    assert.equal(s.get('mcp_fleet_host_network_transmit_bytes_per_second{worker="w1"}'), 2000);
    assert.equal(s.has('mcp_fleet_host_cpu_percent{worker="w2"}'), false, "a gap is left out");
    assert.equal(s.has('mcp_fleet_host_cpu_percent{worker="w3"}'), false, "a disconnected worker's figures are not current");
    assert.ok(![...s.keys()].some((k) => k.startsWith("process_") || k.startsWith("nodejs_")), "defaults are off here");

    // The counter does not fall when a worker it counted is forgotten; a forgotten worker leaves the gauges.
    assert.equal("forgotten" in registry.forget("w3"), true);
    registry.heartbeat("w1", "w1-s1", 2, FIGURES);
    const again = samples((await metrics.render()).body);
    assert.equal(again.get("mcp_fleet_heartbeats_received_total"), 4);
    assert.equal(again.has('mcp_fleet_worker_up{worker="w3"}'), false);
  });

  it("render 10,000 workers with their host figures well within a second", async () => {
    const registry = new Registry({ clock: new FakeClock(), policy });
    const metrics = new FleetMetrics({ hosts: true, defaults: false });
    metrics.attach({ registry, sessionsOpen: () => 10_000 });
    for (let i = 0; i < 10_000; i++) {
      const id = `w${i}`;
      registry.sessionOpened(session(id, { role: i % 2 ? "db" : "web", zone: `z${i % 7}` }));
      registry.heartbeat(id, `${id}-s1`, 1, FIGURES);
    }
    await metrics.render();
    const start = performance.now();
    const { body } = await metrics.render();
    const ms = performance.now() - start;
    assert.ok(body.length > 1_000_000);
    assert.ok(ms < 1000, `rendered ${(body.length / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms`);
  });
});

describe("tool metrics", () => {
  it("count and time every registered tool's calls, an error result as an error", async () => {
    const server = new McpServer({ name: "t", version: "0" });
    const metrics = new FleetMetrics({ defaults: false });
    instrumentTools(server, metrics);
    server.registerTool("echo", { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: "text", text }] }));
    server.registerTool("fail", {}, async () => ({ isError: true, content: [{ type: "text", text: "no" }] }));
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const client = new Client({ name: "t", version: "0" });
    await client.connect(b);
    try {
      await client.callTool({ name: "echo", arguments: { text: "hi" } });
      await client.callTool({ name: "echo", arguments: { text: "again" } });
      await client.callTool({ name: "fail", arguments: {} });
      const s = samples((await metrics.render()).body);
      assert.equal(s.get('mcp_fleet_tool_call_duration_seconds_count{tool="echo",outcome="ok"}'), 2);
      assert.equal(s.get('mcp_fleet_tool_call_duration_seconds_count{tool="fail",outcome="error"}'), 1);
      assert.equal(s.get('mcp_fleet_tool_call_duration_seconds_bucket{le="+Inf",tool="echo",outcome="ok"}'), 2);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
