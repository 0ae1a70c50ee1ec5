import assert from "node:assert/strict";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeClock } from "../../src/core/clock.js";
import { certWarnThresholdMs, DEFAULT_POLICY, type HealthPolicy } from "../../src/core/health.js";
import { Registry, type SessionInfo } from "../../src/core/registry.js";
import { loadIssuer, type Issuer } from "../../src/enroll/issuer.js";
import { MAX_RENEWALS_IN_FLIGHT, RENEWAL_RETRY_MS, renewalPoint, RenewalScheduler, type RenewableSession } from "../../src/enroll/renewal.js";
import { createLogger } from "../../src/log.js";
import { createCsr } from "../../src/pki/csr.js";
import { describeCertificate } from "../../src/pki/identity.js";
import { certLayout } from "../../src/pki/layout.js";
import { initFleet } from "../../src/pki/store.js";
import { EMPTY_METRICS } from "../../src/protocol/metrics.js";

const DAY = 86_400_000;
const policy: HealthPolicy = { ...DEFAULT_POLICY, heartbeatIntervalMs: 1000, missedHeartbeats: 3 };

describe("renewalPoint", () => {
  it("lies within 2/3 ± 5 % of the life, is the same for the same serial, and spreads over serials", () => {
    const notBefore = Date.UTC(2026, 0, 1);
    const life = 7 * DAY;
    const points = new Set<number>();
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < 2000; i++) {
      const serial = randomBytes(16).toString("hex");
      const at = renewalPoint(notBefore, notBefore + life, serial);
      assert.equal(renewalPoint(new Date(notBefore), new Date(notBefore + life), serial), at, "stable");
      const f = (at - notBefore) / life;
      assert.ok(f >= 2 / 3 - 0.05 && f < 2 / 3 + 0.05, `fraction ${f}`);
      lo = Math.min(lo, f);
      hi = Math.max(hi, f);
      points.add(Math.round(at / 1000));
    }
    assert.ok(lo < 2 / 3 - 0.045 && hi > 2 / 3 + 0.045, `spread over the whole band (${lo}..${hi})`);
    assert.ok(points.size > 1900, "different serials, different moments");
    // Always before the expiry warning of the same certificate (a quarter of its life left).
    assert.ok(hi < 0.75);
  });
});

describe("the certificate-expiring warning threshold", () => {
  it("is min(certWarnMs, lifetime/4)", () => {
    assert.equal(certWarnThresholdMs(policy, 365 * DAY), 14 * DAY, "a year-long hand-issued certificate: 14 days");
    assert.equal(certWarnThresholdMs(policy, 7 * DAY), 1.75 * DAY, "a 7-day enrolled one: a quarter of its life");
    assert.equal(certWarnThresholdMs(policy, null), 14 * DAY, "unknown life: the configured bound");
  });

  function registryWithCert(clock: FakeClock, lifeMs: number, ageMs: number): Registry {
    const registry = new Registry({ clock, policy });
    const notBefore = clock.wall() - ageMs;
    const info: SessionInfo = {
      id: "w1",
      sessionId: "s1",
      hostname: "w1.lan",
      agentVersion: "1",
      labels: {},
      platform: { os: "linux", arch: "x64", release: "6" },
      address: null,
      certNotBefore: notBefore,
      certNotAfter: notBefore + lifeMs,
      certSerial: "aa",
    };
    registry.sessionOpened(info);
    return registry;
  }

  /** Keeps w1 beating while the fake clock moves `ms` forward, then returns its state. */
  function liveFor(registry: Registry, clock: FakeClock, ms: number): void {
    for (let t = 0; t < ms; t += 1000) {
      clock.advance(1000);
      registry.heartbeat("w1", "s1", t, EMPTY_METRICS);
      registry.tick();
    }
  }

  it("a 7-day certificate is healthy at its renewal point, and degraded only once renewal is overdue (3/4 of its life)", () => {
    const clock = new FakeClock();
    const registry = registryWithCert(clock, 7 * DAY, 0.7 * 7 * DAY);
    assert.equal(registry.get("w1")?.state, "healthy", "past 2/3 (renewal due) but not warned");
    liveFor(registry, clock, 0.06 * 7 * DAY);
    const w = registry.get("w1");
    assert.equal(w?.state, "degraded");
    assert.deepEqual(w?.reasons.map((r) => r.code), ["cert_expiring"]);
  });

  it("a 365-day certificate still warns 14 days before its expiry", () => {
    const clock = new FakeClock();
    const registry = registryWithCert(clock, 365 * DAY, 350 * DAY);
    assert.equal(registry.get("w1")?.state, "healthy", "15 days left");
    liveFor(registry, clock, 1.1 * DAY);
    assert.deepEqual(registry.get("w1")?.reasons.map((r) => r.code), ["cert_expiring"]);
  });

  it("a renewal tells the registry: the warning goes, and a revocation of the new serial reaches the worker", () => {
    const clock = new FakeClock();
    const registry = registryWithCert(clock, 7 * DAY, 6 * DAY);
    assert.deepEqual(registry.get("w1")?.reasons.map((r) => r.code), ["cert_expiring"]);
    const now = clock.wall();
    assert.equal(registry.certificateRenewed("w1", "other-session", { serial: "bb", notBefore: now, notAfter: now + 7 * DAY }), false);
    assert.equal(registry.certificateRenewed("w1", "s1", { serial: "bb", notBefore: now, notAfter: now + 7 * DAY }), true);
    assert.equal(registry.get("w1")?.state, "healthy");
    assert.deepEqual(registry.revokeMatching((s) => s === "bb"), ["w1"]);
  });
});

/** A session as the scheduler sees it, answering the two requests as an enrolled worker does (or failing). */
class FakeWorkerSession implements RenewableSession {
  readonly sessionId = randomBytes(4).toString("hex");
  isOpen = true;
  held: RenewableSession["held"];
  renews = 0;
  failNext = false;
  /** Resolves the pending certificate.renew, when held back. */
  release: (() => void) | null = null;
  holdBack = false;
  installed: string | null = null;

  constructor(
    readonly workerId: string,
    readonly renewable: boolean,
    cert: { serialNumber: string; notBefore: number; notAfter: number },
    readonly certLabels: Record<string, string> = {},
  ) {
    this.held = cert;
  }

  async request(method: string, params: unknown): Promise<unknown> {
    if (method === "certificate.renew") {
      this.renews++;
      if (this.holdBack) await new Promise<void>((r) => (this.release = r));
      if (this.failNext) {
        this.failNext = false;
        throw new Error("worker refused");
      }
      return { csr: (await createCsr({ id: this.workerId })).csrPem };
    }
    if (method === "certificate.install") {
      const pem = (params as { certificate: string }).certificate;
      this.installed = pem;
      return { serialNumber: new X509Certificate(pem).serialNumber.toLowerCase() };
    }
    throw new Error(`unexpected ${method}`);
  }
}

class FakeTable {
  readonly all: FakeWorkerSession[] = [];
  [Symbol.iterator]() {
    return this.all.values();
  }
  current(id: string) {
    return this.all.find((s) => s.workerId === id);
  }
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("RenewalScheduler", () => {
  let dir: string;
  let issuer: Issuer;
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ name: "renewal-test", level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "renewal-"));
    await initFleet({ dir, fleet: "lab" });
    const files = certLayout(dir);
    const loaded = await loadIssuer({ caPath: files.ca, caKeyPath: files.caKey, fleet: "lab", log });
    assert.ok(loaded);
    issuer = loaded;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function setup() {
    const clock = new FakeClock(Date.now());
    const table = new FakeTable();
    const renewed: Array<{ id: string; serial: string }> = [];
    const registry = {
      certificateRenewed: (id: string, _sessionId: string, c: { serial: string }) => {
        renewed.push({ id, serial: c.serial });
        return true;
      },
    };
    const scheduler = new RenewalScheduler({ sessions: table, registry, issuer, lifetimeMs: 7 * DAY, clock, log });
    const cert = (ageFraction: number, serial = randomBytes(8).toString("hex")) => ({
      serialNumber: serial,
      notBefore: clock.wall() - ageFraction * 7 * DAY,
      notAfter: clock.wall() + (1 - ageFraction) * 7 * DAY,
    });
    return { clock, table, renewed, scheduler, cert };
  }

  it("renews only renewable, open sessions past their renewal point, with the same id and labels; then not again", async () => {
    const { table, renewed, scheduler, cert } = setup();
    const due = new FakeWorkerSession("due", true, cert(0.8), { rack: "r9" });
    const young = new FakeWorkerSession("young", true, cert(0.1));
    const byHand = new FakeWorkerSession("byhand", false, cert(0.9));
    table.all.push(due, young, byHand);
    scheduler.tick();
    await until("the renewal", () => renewed.length === 1);
    assert.deepEqual(renewed.map((r) => r.id), ["due"]);
    const facts = describeCertificate(new X509Certificate(due.installed!));
    assert.deepEqual(facts.identity, { fleet: "lab", role: "worker", id: "due" });
    assert.deepEqual(facts.labels, { rack: "r9" });
    assert.equal(due.held.serialNumber, facts.serialNumber, "the session now holds the new certificate");
    assert.ok(lines.some((l) => l.msg === "certificate renewed" && l.worker === "due" && l.serial === facts.serialNumber && typeof l.notAfter === "string"));
    scheduler.tick();
    await new Promise((r) => setImmediate(r));
    assert.equal(due.renews, 1, "a fresh certificate is not renewed again");
    assert.equal(young.renews + byHand.renews, 0);
  });

  it("one renewal per worker and at most 16 over the fleet in flight", async () => {
    const { table, renewed, scheduler, cert } = setup();
    for (let i = 0; i < 40; i++) {
      const s = new FakeWorkerSession(`w${i}`, true, cert(0.9));
      s.holdBack = true;
      table.all.push(s);
    }
    scheduler.tick();
    scheduler.tick();
    await until("16 held", () => table.all.filter((s) => s.release).length === MAX_RENEWALS_IN_FLIGHT);
    assert.equal(scheduler.renewing, MAX_RENEWALS_IN_FLIGHT);
    assert.ok(table.all.every((s) => s.renews <= 1), "never two at once for one worker");
    for (const s of table.all) {
      s.holdBack = false;
      s.release?.();
    }
    for (let round = 0; round < 5 && renewed.length < 40; round++) {
      await until("a round", () => scheduler.renewing === 0);
      scheduler.tick();
    }
    await until("all 40", () => renewed.length === 40);
  });

  it("a failure is logged and tried again after a minute, not before", async () => {
    const { clock, table, renewed, scheduler, cert } = setup();
    const s = new FakeWorkerSession("flaky", true, cert(0.9));
    s.failNext = true;
    table.all.push(s);
    scheduler.tick();
    await until("the failure", () => lines.some((l) => l.worker === "flaky" && l.level === "warn"));
    await until("settled", () => scheduler.renewing === 0);
    clock.advance(RENEWAL_RETRY_MS - 1000);
    scheduler.tick();
    await new Promise((r) => setImmediate(r));
    assert.equal(s.renews, 1, "not before a minute");
    clock.advance(1000);
    scheduler.tick();
    await until("the retry", () => renewed.length === 1);
    assert.equal(s.renews, 2);
  });
});
