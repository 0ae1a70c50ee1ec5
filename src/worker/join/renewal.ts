import { createPublicKey, X509Certificate } from "node:crypto";
import type { Logger } from "../../log.js";
import { createCsr } from "../../pki/csr.js";
import { InstallParams, RenewParams, type InstallResult, type RenewResult } from "../../protocol/renewal.js";
import { loadTlsMaterial, type TlsMaterial } from "../../tls/contexts.js";
import { saveEnrolledIdentity, writePendingKey, type EnrolledPaths } from "./enrolled-identity.js";
import { checkIssuedWorker } from "./manager-chain.js";

/** A request error with a code the manager reads (the Link sends `code` along). */
function refusal(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function parse<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, params: unknown, method: string): T {
  const parsed = schema.safeParse(params ?? {});
  if (!parsed.success) throw refusal("bad_params", `${method}: parameters not understood`);
  return parsed.data;
}

export interface RenewerOptions {
  paths: EnrolledPaths;
  /** The identity in use now: its id, fleet and CA are what a renewed certificate must keep. */
  current: () => TlsMaterial;
  /** The new identity, on disk already: the caller uses it for its next connection. */
  installed: (material: TlsMaterial) => void;
  log: Logger;
}

/**
 * The worker's half of renewal (the manager keeps the time and asks): `certificate.renew` makes a key and a CSR,
 * `certificate.install` takes the signed certificate, checks it is for that key and this worker, and keeps both.
 * The key stays in memory and in the pending-key file between the two, so nothing else ever holds it.
 */
export class CertificateRenewer {
  private pendingKeyPem: string | null = null;

  constructor(private readonly o: RenewerOptions) {}

  async renew(params: unknown): Promise<RenewResult> {
    const { newKey } = parse(RenewParams, params, "certificate.renew");
    const self = this.o.current();
    const { csrPem, keyPem } = await createCsr({ id: self.self.identity.id, keyPem: newKey ? undefined : self.key.toString("utf8") });
    writePendingKey(this.o.paths, keyPem);
    this.pendingKeyPem = keyPem;
    return { csr: csrPem };
  }

  async install(params: unknown): Promise<InstallResult> {
    const { certificate } = parse(InstallParams, params, "certificate.install");
    const keyPem = this.pendingKeyPem;
    if (!keyPem) throw refusal("no_renewal", "certificate.install without a certificate.renew before it");
    const self = this.o.current();
    const problem = checkIssuedWorker({
      certPem: certificate,
      ca: new X509Certificate(self.ca),
      publicKey: createPublicKey(keyPem),
      id: self.self.identity.id,
      fleet: self.self.identity.fleet,
      now: new Date(),
    });
    if (problem) {
      this.o.log.error({ reason: problem }, "refusing a renewed certificate");
      throw refusal("bad_certificate", problem);
    }
    saveEnrolledIdentity(this.o.paths, { certPem: certificate, keyPem });
    this.pendingKeyPem = null;
    const material = loadTlsMaterial(this.o.paths, "worker");
    this.o.installed(material);
    this.o.log.info({ serial: material.self.serialNumber, notAfter: material.self.notAfter }, "certificate renewed");
    return { serialNumber: material.self.serialNumber };
  }
}
