import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { useCerts, type CertSet } from "../helpers/fleet.js";
import { Proc, sleep } from "../helpers/processes.js";

describe("configuration from the environment (systemd EnvironmentFile style)", () => {
  const fx = useCerts("cli", ["env1"], { before, after });
  let certs: CertSet;
  before(() => {
    certs = fx.certs;
  });

  it("manager and worker run from MCP_FLEET_* variables alone; the worker keeps the manager's pace", async () => {
    const manager = new Proc("manager", ["manager"], {
      MCP_FLEET_CA: certs.ca,
      MCP_FLEET_CERT: certs.managerCert,
      MCP_FLEET_KEY: certs.managerKey,
      MCP_FLEET_HOST: "127.0.0.1",
      MCP_FLEET_PORT: "0",
      MCP_FLEET_HEARTBEAT_INTERVAL: "300ms",
      MCP_FLEET_MISSED_HEARTBEATS: "5",
      MCP_FLEET_PRESSURE_PERCENT: "0",
      MCP_FLEET_LOG_LEVEL: "trace",
      MCP_FLEET_STATE: `${certs.dir}/state.json`,
      MCP_FLEET_NO_MDNS: "1",
      MCP_FLEET_METRICS_LISTEN: "off",
    });
    const listening = await manager.waitFor((l) => l.msg === "manager listening", 10_000, "listening");
    assert.equal(listening.heartbeatIntervalMs, 300);
    assert.equal(listening.missedHeartbeats, 5);

    const { cert, key } = certs.worker("env1");
    const worker = new Proc("worker", ["worker"], {
      MCP_FLEET_CA: certs.ca,
      MCP_FLEET_CERT: cert,
      MCP_FLEET_KEY: key,
      MCP_FLEET_MANAGER: `wss://127.0.0.1:${listening.port}`,
      MCP_FLEET_LABELS: "role=db,zone=eu-1",
      MCP_FLEET_NO_MDNS: "1",
    });
    const connected = await worker.waitFor((l) => l.msg === "connected to manager", 10_000, "connected");
    assert.equal(connected.heartbeatIntervalMs, 300, "the interval comes from the manager's welcome");
    const from = manager.lines.length;
    await sleep(3000);
    const beats = manager.lines.slice(from).filter((l) => l.msg === "heartbeat");
    // 3 s at 300 ms is 10 beats; allow for a slow machine but not for a 1 s default.
    assert.ok(beats.length >= 8 && beats.length <= 12, `${beats.length} heartbeats in 3 s`);
    worker.kill("SIGTERM");
    assert.equal((await worker.exited).code, 0);
    manager.kill("SIGTERM");
    assert.equal((await manager.exited).code, 0, "the manager stops cleanly on SIGTERM");
  });

  it("bad settings exit 2 with every problem named by flag and variable", async () => {
    const p = new Proc("manager", ["manager", "--port", "99999", "--no-mdns"], { MCP_FLEET_HEARTBEAT_INTERVAL: "fast", MCP_FLEET_LOG_LEVEL: "loud" });
    const { code } = await p.exited;
    assert.equal(code, 2);
    const text = p.lines.map((l) => String(l.raw)).join("\n");
    assert.match(text, /--port \(MCP_FLEET_PORT\): must be 0–65535/);
    assert.match(text, /--heartbeat-interval \(MCP_FLEET_HEARTBEAT_INTERVAL\): "fast" is not a duration/);
    assert.match(text, /--log-level \(MCP_FLEET_LOG_LEVEL\)/);
  });

  it("a worker without a certificate, or given a manager certificate, refuses to start with a clear message", async () => {
    const missing = new Proc("worker", ["worker", "--ca", certs.ca, "--cert", "/nonexistent.pem", "--key", "/nonexistent-key.pem", "--manager", "wss://127.0.0.1:1", "--no-mdns"]);
    assert.equal((await missing.exited).code, 2);
    assert.match(String(missing.lines[0]?.raw), /cannot read the certificate \(--cert\) \/nonexistent\.pem/);
    const wrong = new Proc("worker", ["worker", "--ca", certs.ca, "--cert", certs.managerCert, "--key", certs.managerKey, "--manager", "wss://127.0.0.1:1", "--no-mdns"]);
    assert.equal((await wrong.exited).code, 2);
    assert.match(String(wrong.lines[0]?.raw), /is a manager certificate; this command needs a worker certificate/);
    const badUrl = new Proc("worker", ["worker", "--ca", certs.ca, "--cert", certs.managerCert, "--key", certs.managerKey, "--manager", "http://x", "--no-mdns"]);
    assert.equal((await badUrl.exited).code, 2);
    assert.match(badUrl.lines.map((l) => String(l.raw)).join("\n"), /--manager \(MCP_FLEET_MANAGER\): must be a URL like wss:/);
  });
});
