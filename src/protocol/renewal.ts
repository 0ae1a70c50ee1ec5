import { z } from "zod";
import { CertificatePem, CsrPem } from "./join.js";

/*
 * Renewing an enrolled worker's certificate over its live session (docs/joining.md). The manager keeps the time:
 * when a renewable session's certificate passes its renewal point (a jittered 2/3 of its life), the manager asks
 * the worker for a CSR (`certificate.renew`), signs it, and hands the certificate back (`certificate.install`).
 * The session carries on; the worker's next connection uses the new certificate.
 */

export const RenewParams = z
  .object({
    /** Make a new key for the new certificate (the default); false keeps the current key. */
    newKey: z.boolean().default(true),
  })
  .strict();
export const RenewResult = z.object({ csr: CsrPem });

export const InstallParams = z
  .object({
    certificate: CertificatePem,
  })
  .strict();
/** The serial of the certificate the worker now holds (equal to the one sent, or the install failed). */
export const InstallResult = z.object({ serialNumber: z.string().regex(/^[0-9a-f]{1,40}$/) });

export type RenewParams = z.infer<typeof RenewParams>;
export type RenewResult = z.infer<typeof RenewResult>;
export type InstallParams = z.infer<typeof InstallParams>;
export type InstallResult = z.infer<typeof InstallResult>;
