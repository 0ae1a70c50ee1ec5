import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../../src/log.js";
import { startMetricsListener } from "../../src/metrics/listener.js";
import { ManagerProc, startWorker, tempDir, useCerts, type CertSet } from "../helpers/fleet.js";
import { Proc, sleep } from "../helpers/processes.js";
import { rawClient } from "../helpers/raw-client.js";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const WAIT_MS = 30_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      s.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Polls `probe` every 250 ms until it returns a value, for at most `ms`. */
async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = performance.now() + ms;
  let last: unknown;
  for (let i = 0; performance.now() < end && i < 10_000; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${String(last)})` : ""}`);
}

/** A PromQL instant query's single value, or undefined while it has none. */
async function queryValue(promPort: number, query: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; data: { result: Array<{ value: [number, string] }> } };
  if (body.status !== "success" || body.data.result.length === 0) return undefined;
  return Number(body.data.result[0]!.value[1]);
}

function promtoolCheck(body: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(PROMTOOL, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => resolve({ code, output }));
    child.stdin.end(body);
  });
}

const skip = !existsSync(PROMETHEUS) || !existsSync(PROMTOOL) ? "prometheus is not installed (apt-get install prometheus; .ci/run does it)" : false;

describe("the manager's metrics, scraped by a real Prometheus", { skip }, () => {
  const fx = useCerts("metrics", ["m1", "m2", "m3"], { before, after });
  let certs: CertSet;
  let manager: ManagerProc;
  let metricsPort: number;
  let promPort: number;
  let prometheus: Proc | null = null;
  let promDir: { path: string; cleanup: () => Promise<void> } | null = null;
  const workers = new Map<string, Proc>();
  const base = () => `http://127.0.0.1:${metricsPort}`;

  before(async () => {
    certs = fx.certs;
    metricsPort = await freePort();
    manager = await ManagerProc.start(certs, ["--metrics-listen", `127.0.0.1:${metricsPort}`, "--metrics-hosts"]);
    await manager.waitFor((l) => l.msg === "metrics listening", 10_000, "metrics listening");
    for (const id of ["m1", "m2", "m3"]) workers.set(id, startWorker(certs, id, manager.url, ["--labels", `role=r-${id},zone=z1`]));
    promDir = await tempDir("prometheus");
    promPort = await freePort();
    const config = join(promDir.path, "prometheus.yml");
    writeFileSync(
      config,
      ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "scrape_configs:", "  - job_name: mcp-fleet", "    static_configs:", `      - targets: ["127.0.0.1:${metricsPort}"]`, ""].join("\n"),
    );
    prometheus = new Proc(
      "prometheus",
      [`--config.file=${config}`, `--storage.tsdb.path=${join(promDir.path, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`, "--log.level=warn"],
      {},
      [],
      [PROMETHEUS],
    );
  });

  after(async () => {
    prometheus?.kill("SIGKILL");
    await prometheus?.exited;
    await promDir?.cleanup();
  });

  it("/healthz and /readyz answer 200 while the manager serves", async () => {
    const health = await fetch(`${base()}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await health.text()).trim(), "ok");
    assert.equal((await fetch(`${base()}/readyz`)).status, 200);
    assert.equal((await fetch(`${base()}/nothing`)).status, 404);
  });

  it("Prometheus sees three healthy workers, then the one killed with SIGKILL down", async (t) => {
    const healthy = await until("3 healthy in Prometheus", WAIT_MS, async () => ((await queryValue(promPort, 'sum(mcp_fleet_workers{state="healthy"})')) === 3 ? 3 : undefined));
    assert.equal(healthy, 3);
    // The worker's own labels ride on its up series.
    assert.equal(await queryValue(promPort, 'mcp_fleet_worker_up{worker="m2",label_role="r-m2",label_zone="z1"}'), 1);
    const killedAt = performance.now();
    workers.get("m2")!.kill("SIGKILL");
    await until("m2 down in Prometheus", WAIT_MS, async () => ((await queryValue(promPort, 'mcp_fleet_worker_up{worker="m2"}')) === 0 ? 0 : undefined));
    t.diagnostic(`m2 down in Prometheus ${Math.round(performance.now() - killedAt)} ms after SIGKILL`);
    assert.equal(await queryValue(promPort, 'sum(mcp_fleet_workers{state="unhealthy"})'), 1);
    assert.ok(((await queryValue(promPort, "mcp_fleet_heartbeats_received_total")) ?? 0) > 0);
    assert.equal(await queryValue(promPort, 'up{job="mcp-fleet"}'), 1);
  });

  it("the scraped body passes promtool check metrics without a remark", async () => {
    const res = await fetch(`${base()}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    for (const name of ["mcp_fleet_workers", "mcp_fleet_worker_up", "mcp_fleet_sessions_open", "mcp_fleet_refused_total", "mcp_fleet_host_cpu_percent", "process_cpu_seconds_total"]) {
      assert.match(body, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    const { code, output } = await promtoolCheck(body);
    assert.equal(output.trim(), "", output);
    assert.equal(code, 0);
  });

  it("counts a session refused for its certificate's role under its close code's name", async () => {
    const scrape = async () => (await (await fetch(`${base()}/metrics`)).text()).match(/^mcp_fleet_refused_total\{cause="wrong_role"\} (\d+)$/m)?.[1];
    assert.equal(await scrape(), "0", "every cause is exported from the start");
    // The manager's own certificate is of this fleet's CA, but not a worker's: refused with 4003 after the upgrade.
    const outcome = await rawClient(manager.url, { ca: certs.ca, cert: certs.managerCert, key: certs.managerKey }).done;
    assert.equal(outcome.closeCode, 4003);
    assert.equal(await until("wrong_role counted", WAIT_MS, async () => ((await scrape()) === "0" ? undefined : scrape())), "1");
  });

  it("a second manager finds the metrics port taken, says so once and serves the fleet without metrics", async () => {
    const second = await ManagerProc.start(certs, ["--metrics-listen", `127.0.0.1:${metricsPort}`]);
    try {
      const warnings = second.lines.filter((l) => l.msg === "metrics listener not started: carrying on without metrics");
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.code, "EADDRINUSE");
      assert.ok(second.running);
      // The first one's endpoint is untouched.
      assert.equal((await fetch(`${base()}/healthz`)).status, 200);
    } finally {
      await second.stop();
    }
  });
});

describe("the metrics listener", () => {
  it("says 503 on /readyz until it is told the manager is ready, and closes", async () => {
    let ready = false;
    const listener = await startMetricsListener({
      host: "127.0.0.1",
      port: 0,
      render: async () => ({ body: "# nothing\n", contentType: "text/plain; version=0.0.4; charset=utf-8" }),
      ready: () => ready,
      log: createLogger({ name: "test", level: "silent" }),
    });
    assert.ok(listener);
    try {
      const url = `http://127.0.0.1:${listener.port}`;
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 503);
      ready = true;
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
      assert.equal((await fetch(`${url}/metrics`, { method: "POST" })).status, 405);
    } finally {
      await listener.close();
    }
    await assert.rejects(fetch(`http://127.0.0.1:${listener.port}/healthz`));
  });
});
