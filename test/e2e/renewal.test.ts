import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { WebSocket } from "ws";
import { loadIssuer, type Issuer } from "../../src/enroll/issuer.js";
import { createLogger } from "../../src/log.js";
import { startManager, type Manager } from "../../src/manager/manager.js";
import { createCsr, keyFingerprint } from "../../src/pki/csr.js";
import { readCertificate } from "../../src/pki/identity.js";
import { readInventory } from "../../src/pki/inventory.js";
import { certLayout } from "../../src/pki/layout.js";
import { initFleet } from "../../src/pki/store.js";
import { EMPTY_METRICS } from "../../src/protocol/metrics.js";
import { helloFor, rawClient, type RawOutcome } from "../helpers/raw-client.js";

/**
 * Renewal on the manager's side, end to end over real mutual TLS: the manager runs in this process with the CA key;
 * the enrolled worker is a bare WebSocket client that answers certificate.renew and certificate.install itself (the
 * real agent's side of it has its own tests). Its first certificate lives 12 s, so renewal comes due in about 7 s.
 */
describe("certificate renewal over a live session", () => {
  let dir: string;
  let files: ReturnType<typeof certLayout>;
  let issuer: Issuer;
  let manager: Manager;
  const lines: Array<Record<string, unknown>> = [];
  const clients: WebSocket[] = [];
  const FIRST_LIFE_MS = 12_000;
  const RENEWED_LIFE_MS = 60_000;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "renewal-e2e-"));
    await initFleet({ dir, fleet: "lab" });
    files = certLayout(dir);
    const log = createLogger({ name: "manager", level: "info", destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
    const loaded = await loadIssuer({ caPath: files.ca, caKeyPath: files.caKey, fleet: "lab", log });
    assert.ok(loaded);
    issuer = loaded;
    manager = await startManager({
      tls: { ca: files.ca, cert: files.manager, key: files.managerKey },
      host: "127.0.0.1",
      port: 0,
      heartbeatIntervalMs: 500,
      missedHeartbeats: 20,
      enrollment: { issuer, lifetimeMs: RENEWED_LIFE_MS, tokensPath: join(dir, "tokens.json") },
      log,
    });
  });
  after(async () => {
    for (const ws of clients) ws.terminate();
    await manager?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An enrolled worker: hello with renewable, heartbeats, and its half of the renewal. */
  function enrolledWorker(id: string, certPath: string, keyPath: string) {
    const state = { renewedKey: null as string | null, installed: null as string | null, beats: null as NodeJS.Timeout | null };
    const client = rawClient(`wss://127.0.0.1:${manager.port}`, { ca: files.ca, cert: certPath, key: keyPath }, (ws) => {
      ws.send(JSON.stringify({ ...helloFor(id), labels: { zone: "self-reported", own: "x" }, renewable: true }));
      let seq = 0;
      state.beats = setInterval(() => ws.send(JSON.stringify({ type: "heartbeat", seq: seq++, metrics: EMPTY_METRICS })), 250);
      ws.on("message", (data) => {
        const msg = JSON.parse(String(data)) as { type: string; id?: number; method?: string; params?: { certificate?: string } };
        if (msg.type !== "request") return;
        void (async () => {
          if (msg.method === "certificate.renew") {
            const made = await createCsr({ id });
            state.renewedKey = made.keyPem;
            ws.send(JSON.stringify({ type: "response", id: msg.id, result: { csr: made.csrPem } }));
          } else if (msg.method === "certificate.install") {
            const cert = new X509Certificate(msg.params!.certificate!);
            // As the real worker does: the certificate must be for the key it just made.
            assert.equal(keyFingerprint(cert.publicKey), keyFingerprint(state.renewedKey!));
            state.installed = msg.params!.certificate!;
            ws.send(JSON.stringify({ type: "response", id: msg.id, result: { serialNumber: cert.serialNumber.toLowerCase() } }));
          }
        })();
      });
    });
    clients.push(client.ws);
    void client.done.then(() => state.beats && clearInterval(state.beats));
    return { ...client, state };
  }

  async function until(what: string, check: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("renews before expiry without dropping the session; the registry holds the new certificate; the next connection uses it", async () => {
    const first = await createCsr({ id: "e1" });
    const cert = await issuer.issue({ csrPem: first.csrPem, id: "e1", labels: { zone: "z1" }, lifetimeMs: FIRST_LIFE_MS, source: "join" });
    writeFileSync(join(dir, "e1.pem"), cert.certPem);
    writeFileSync(join(dir, "e1-key.pem"), first.keyPem, { mode: 0o600 });
    const worker = enrolledWorker("e1", join(dir, "e1.pem"), join(dir, "e1-key.pem"));
    let closed: RawOutcome | null = null;
    void worker.done.then((o) => (closed = o));
    await until("e1 connected", () => manager.registry.get("e1")?.state === "healthy", 10_000);
    const view = manager.registry.get("e1")!;
    assert.deepEqual(view.labels, { zone: "z1", own: "x" }, "the certificate's labels outrank the hello's");
    const connectedSince = view.connectedSince;

    await until("certificate renewed", () => lines.some((l) => l.msg === "certificate renewed" && l.worker === "e1"), 30_000);
    const renewedAt = Date.now();
    assert.ok(renewedAt < cert.notAfter.getTime(), "before the first certificate expired");
    const line = lines.find((l) => l.msg === "certificate renewed")!;
    const fresh = readCertificate(worker.state.installed!);
    assert.equal(line.serial, fresh.serialNumber);
    assert.equal(line.notAfter, fresh.notAfter.toISOString());
    assert.deepEqual(fresh.identity, { fleet: "lab", role: "worker", id: "e1" });
    assert.deepEqual(fresh.labels, { zone: "z1" }, "the same labels, carried over");
    assert.ok(Math.abs(fresh.notAfter.getTime() - (renewedAt + RENEWED_LIFE_MS)) < 10_000, "the configured lifetime");

    assert.equal(closed, null, "the session stayed up");
    const after = manager.registry.get("e1")!;
    assert.equal(after.connectedSince, connectedSince, "the same session");
    assert.equal(after.state, "healthy");
    assert.equal(manager.registry.export().workers.find((w) => w.id === "e1")?.certSerial, fresh.serialNumber, "the registry holds the new serial");
    const entry = (await readInventory(files.inventory)).certificates.find((c) => c.serialNumber === fresh.serialNumber);
    assert.equal(entry?.source, "renewal");
    // Past the first certificate's expiry the worker is still healthy: no "certificate expiring" for the old one.
    await until("the first certificate's expiry", () => Date.now() > cert.notAfter.getTime() + 500, 15_000);
    assert.equal(manager.registry.get("e1")?.state, "healthy");
    assert.ok(!manager.registry.events({ worker: "e1" }).some((e) => e.reasons.some((r) => r.code === "cert_expiring")));
    assert.equal(lines.filter((l) => l.msg === "certificate renewed").length, 1, "renewed once, not on every tick");

    // The next connection, with the renewed certificate and key, is let in.
    writeFileSync(join(dir, "e1-new.pem"), worker.state.installed!);
    writeFileSync(join(dir, "e1-new-key.pem"), worker.state.renewedKey!, { mode: 0o600 });
    worker.ws.close();
    await worker.done;
    await until("e1 disconnected", () => manager.registry.get("e1")?.connected === false, 10_000);
    const next = enrolledWorker("e1", join(dir, "e1-new.pem"), join(dir, "e1-new-key.pem"));
    await until("e1 back with the new certificate", () => manager.registry.get("e1")?.connected === true && manager.registry.get("e1")?.state === "healthy", 10_000);
    assert.equal(manager.registry.export().workers.find((w) => w.id === "e1")?.certSerial, fresh.serialNumber);
    next.ws.close();
  });
});
