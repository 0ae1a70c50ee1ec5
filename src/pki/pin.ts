import { createHash, createPublicKey } from "node:crypto";

/**
 * The CA pin a join string carries: SHA-256 of the CA's public key as DER SubjectPublicKeyInfo, in hex (the
 * same digest kubeadm's `--discovery-token-ca-cert-hash sha256:` names). It pins the key, not the certificate, so
 * a CA certificate re-issued with the same key keeps every join string valid.
 */
export function caPin(caPem: string | Buffer): string {
  const spki = createPublicKey(caPem).export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

/** What managers announce on mDNS (TXT `pin`): enough to skip other fleets' managers, never enough to trust one. */
export function pinPrefix(pin: string): string {
  return pin.slice(0, 16);
}
