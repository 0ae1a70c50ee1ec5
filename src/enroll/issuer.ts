import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import { Labels, WORKER_ID_PATTERN } from "../protocol/messages.js";
import { inspectCsr, keyFingerprint } from "../pki/csr.js";
import { caSigner, issueForPublicKey, type CaSigner } from "../pki/generate.js";
import { readCertificate } from "../pki/identity.js";
import { entryFor, readInventory, record, updateInventory, type InventoryEntry } from "../pki/inventory.js";
import { certLayout } from "../pki/layout.js";
import { revokeCertificatesOf } from "../pki/store.js";

export interface IssuedWorkerCertificate {
  certPem: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  keyFingerprint: string;
}

export interface Issuer {
  readonly caPem: string;
  /** Role worker, fleet = the CA's fleet, id as given, labels in the SAN; records it in inventory.json (with keyFingerprint, source). Throws FleetError E_JOIN for a bad CSR. */
  issue(o: { csrPem: string; id: string; labels: Labels; lifetimeMs: number; source: string }): Promise<IssuedWorkerCertificate>;
  /** An unexpired, unrevoked certificate for `id` whose key is not `keyFingerprint` (hand-issued ones count). */
  heldByOther(id: string, keyFingerprint: string, now: Date): Promise<boolean>;
  /** Revokes every other unexpired certificate of `id`, rewrites crl.pem; returns their serials. */
  revokeOthers(id: string, keepSerial: string): Promise<string[]>;
}

/**
 * One inventory change at a time from this process, and the certificates issued meanwhile recorded together: 200
 * hosts joining at once make a handful of inventory writes, not 200 rounds on its lock file.
 */
class InventoryQueue {
  private chain: Promise<unknown> = Promise.resolve();
  private batch: Array<{ entry: InventoryEntry; done: (err?: unknown) => void }> = [];

  constructor(private readonly path: string) {}

  /** Runs `fn` after everything queued before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** Resolves once `entry` is written to the inventory. */
  record(entry: InventoryEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.batch.push({ entry, done: (err) => (err === undefined ? resolve() : reject(err as Error)) });
      if (this.batch.length === 1) void this.exclusive(() => this.flush());
    });
  }

  /** Entries issued but not yet written: a check of who holds an id must see them too. */
  get unwritten(): InventoryEntry[] {
    return this.batch.map((b) => b.entry);
  }

  private async flush(): Promise<void> {
    const batch = this.batch;
    this.batch = [];
    try {
      await updateInventory(this.path, async (inventory) => {
        for (const b of batch) record(inventory, b.entry);
      });
      for (const b of batch) b.done();
    } catch (err) {
      for (const b of batch) b.done(err ?? new Error("inventory write failed"));
    }
  }
}

/** The manager's signer of worker certificates: the fleet CA's key, and the inventory and CRL beside the CA. */
class CaIssuer implements Issuer {
  private readonly files;
  private readonly queue;

  constructor(
    caPath: string,
    readonly caPem: string,
    private readonly caKeyPem: string,
    private readonly signer: CaSigner,
    private readonly fleet: string,
  ) {
    this.files = certLayout(dirname(caPath));
    this.queue = new InventoryQueue(this.files.inventory);
  }

  async issue(o: { csrPem: string; id: string; labels: Labels; lifetimeMs: number; source: string }): Promise<IssuedWorkerCertificate> {
    const csr = await inspectCsr(o.csrPem);
    if (!csr.ok) throw new FleetError("E_JOIN", `bad certificate request: ${csr.error}`);
    if (!WORKER_ID_PATTERN.test(o.id)) throw new FleetError("E_JOIN", `"${o.id}" is not a worker id (a DNS label)`);
    const labels = Labels.safeParse(o.labels);
    if (!labels.success) throw new FleetError("E_JOIN", `bad labels: ${labels.error.issues[0]?.message}`);
    if (!(o.lifetimeMs > 0)) throw new FleetError("E_JOIN", `a certificate lifetime must be positive, not ${o.lifetimeMs} ms`);
    const cert = await issueForPublicKey({
      signer: this.signer,
      publicKeyPem: csr.publicKeyPem,
      identity: { fleet: this.fleet, role: "worker", id: o.id },
      lifetimeMs: o.lifetimeMs,
      labels: labels.data,
    });
    // Recorded before it is handed out: a certificate the inventory misses could not be revoked by its id.
    await this.queue.record({ ...entryFor(cert, { id: o.id, role: "worker" }), keyFingerprint: csr.keyFingerprint, source: o.source });
    return { certPem: cert.certPem, serialNumber: cert.serialNumber, notBefore: cert.notBefore, notAfter: cert.notAfter, keyFingerprint: csr.keyFingerprint };
  }

  async heldByOther(id: string, fingerprint: string, now: Date): Promise<boolean> {
    const inventory = await readInventory(this.files.inventory);
    const entries = [...inventory.certificates, ...this.queue.unwritten];
    const revoked = new Set(entries.filter((c) => c.revokedAt !== null).map((c) => c.serialNumber));
    const live = (serial: string, notAfter: number) => !revoked.has(serial) && notAfter > now.getTime();
    // A hand-issued certificate from before the inventory existed lives only in workers/<id>.pem; its key is
    // read there, so a host that holds that key may re-join under its id.
    const onDisk = await this.certificateOnDisk(id);
    if (onDisk && live(onDisk.serialNumber, onDisk.notAfter) && onDisk.keyFingerprint !== fingerprint) return true;
    return entries.some(
      (c) =>
        c.role === "worker" &&
        c.id === id &&
        live(c.serialNumber, Date.parse(c.notAfter)) &&
        (c.keyFingerprint ?? (c.serialNumber === onDisk?.serialNumber ? onDisk.keyFingerprint : null)) !== fingerprint,
    );
  }

  async revokeOthers(id: string, keepSerial: string): Promise<string[]> {
    const result = await this.queue.exclusive(() =>
      revokeCertificatesOf({ dir: this.files.dir, ca: { certPem: this.caPem, keyPem: this.caKeyPem }, id, keepSerial }),
    );
    return result?.revoked ?? [];
  }

  private async certificateOnDisk(id: string): Promise<{ serialNumber: string; notAfter: number; keyFingerprint: string } | null> {
    const path = this.files.worker(id);
    if (!existsSync(path)) return null;
    try {
      const pem = await readFile(path, "utf8");
      const facts = readCertificate(pem);
      if (facts.identity?.role !== "worker" || facts.identity.id !== id) return null;
      return { serialNumber: facts.serialNumber, notAfter: facts.notAfter.getTime(), keyFingerprint: keyFingerprint(new X509Certificate(pem).publicKey) };
    } catch {
      return null;
    }
  }
}

/** null (and one log line) when the CA key is missing or unreadable: enrollment is then off. */
export async function loadIssuer(o: { caPath: string; caKeyPath: string; fleet: string; log: Logger }): Promise<Issuer | null> {
  let caPem: string;
  let caKeyPem: string;
  try {
    caPem = await readFile(o.caPath, "utf8");
    caKeyPem = await readFile(o.caKeyPath, "utf8");
    if (keyFingerprint(caKeyPem) !== keyFingerprint(new X509Certificate(caPem).publicKey)) {
      throw new Error(`the key is not the key of the CA in ${o.caPath}`);
    }
  } catch (err) {
    o.log.warn({ caKey: o.caKeyPath, err: errorMessage(err) }, "enrollment disabled: the CA key is not readable; hosts cannot join and certificates are not renewed");
    return null;
  }
  const signer = await caSigner({ certPem: caPem, keyPem: caKeyPem });
  return new CaIssuer(o.caPath, caPem, caKeyPem, signer, o.fleet);
}
