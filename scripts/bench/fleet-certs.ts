import "reflect-metadata";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { issueCertificate } from "../../src/pki/generate.js";
import { initFleet } from "../../src/pki/store.js";
import { certLayout } from "../../src/pki/layout.js";

export interface BenchCerts {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  /** One JSON file with the CA and every simulated worker's certificate and key, read by the simulators. */
  workersFile: string;
}

/**
 * A fleet CA, the manager's certificate and `count` worker certificates, made with our own PKI code and kept
 * between runs (making 10,000 takes a while). Each simulated worker gets its own identity, as real ones do.
 */
export async function ensureBenchCerts(dir: string, count: number, log: (s: string) => void): Promise<BenchCerts> {
  const files = certLayout(dir);
  if (!existsSync(files.ca)) await initFleet({ dir, fleet: "bench" });
  const workersFile = join(dir, "sim-workers.json");
  type Stored = { ca: string; workers: Array<{ id: string; cert: string; key: string }> };
  const caPem = readFileSync(files.ca, "utf8");
  let stored: Stored = { ca: caPem, workers: [] };
  if (existsSync(workersFile)) {
    const read = JSON.parse(readFileSync(workersFile, "utf8")) as Stored;
    if (read.ca === caPem) stored = read;
  }
  if (stored.workers.length < count) {
    const ca = { certPem: caPem, keyPem: readFileSync(files.caKey, "utf8") };
    const started = performance.now();
    log(`making ${count - stored.workers.length} worker certificates (kept in ${workersFile} for later runs)`);
    for (let i = stored.workers.length; i < count; i++) {
      const id = `sim-${String(i).padStart(5, "0")}`;
      const issued = await issueCertificate({ ca, identity: { fleet: "bench", role: "worker", id }, days: 365 });
      stored.workers.push({ id, cert: issued.certPem, key: issued.keyPem });
    }
    writeFileSync(workersFile, JSON.stringify(stored), { mode: 0o600 });
    log(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return { dir, ca: files.ca, cert: files.manager, key: files.managerKey, workersFile };
}
