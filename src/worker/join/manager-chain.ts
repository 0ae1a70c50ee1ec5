import { X509Certificate, type KeyObject } from "node:crypto";
import type { DetailedPeerCertificate } from "node:tls";
import { caPin } from "../../pki/pin.js";
import { identityFromSubjectAltName, type Identity } from "../../pki/identity.js";

/**
 * Whether a server a joining worker reached is a manager of the fleet its join string pins. Everything about the
 * server (the address, its mDNS announcement, its name) is a hint; this check is the trust. Pure: the caller hands
 * in the chain the server presented and the time.
 */
export type ChainVerdict =
  | { ok: true; ca: X509Certificate; leaf: X509Certificate; identity: Identity }
  | { ok: false; status: "pin_mismatch" | "not_a_manager"; message: string };

/** The chain as Node reads it off a TLS socket: the leaf, then each issuer until one is its own. */
export function chainFromPeer(peer: DetailedPeerCertificate | null | undefined): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  let cert = peer;
  // A chain longer than this is not one our fleets make; the loop also ends on the self-reference at the root.
  while (cert?.raw && !seen.has(cert) && out.length < 8) {
    seen.add(cert);
    out.push(new X509Certificate(cert.raw));
    cert = cert.issuerCertificate;
  }
  return out;
}

function spkiPin(cert: X509Certificate): string | null {
  try {
    return caPin(cert.toString());
  } catch {
    return null;
  }
}

function signs(ca: X509Certificate, leaf: X509Certificate): boolean {
  try {
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

function validAt(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

/**
 * The leaf must be signed by a CA certificate in the chain whose public key is the pinned one, and name the manager
 * role. Presenting the pinned CA's (public) certificate is not enough: the signature on the leaf is what only the
 * CA's key can make.
 */
export function checkManagerChain(chain: readonly X509Certificate[], pin: string, now: Date): ChainVerdict {
  const leaf = chain[0];
  if (!leaf) return { ok: false, status: "pin_mismatch", message: "the server presented no certificate" };
  const ca = chain.find((c) => spkiPin(c) === pin);
  if (!ca) return { ok: false, status: "pin_mismatch", message: "no certificate in the server's chain has the pinned CA key" };
  if (!ca.ca) return { ok: false, status: "pin_mismatch", message: "the certificate with the pinned key is not a CA certificate" };
  if (!signs(ca, leaf)) return { ok: false, status: "pin_mismatch", message: "the server's certificate was not signed by the pinned CA" };
  if (!validAt(ca, now)) return { ok: false, status: "not_a_manager", message: `the pinned CA certificate is not valid now (${ca.validFrom} to ${ca.validTo})` };
  const identity = identityFromSubjectAltName(leaf.subjectAltName);
  if (identity?.role !== "manager") {
    const names = identity ? `a ${identity.role} of fleet "${identity.fleet}"` : "no fleet identity";
    return { ok: false, status: "not_a_manager", message: `the server's certificate names ${names}, not a manager` };
  }
  if (!validAt(leaf, now)) {
    return { ok: false, status: "not_a_manager", message: `the manager's certificate is not valid now (${leaf.validFrom} to ${leaf.validTo})` };
  }
  return { ok: true, ca, leaf, identity };
}

/**
 * Whether `certPem` is a worker certificate for `id`, signed by `ca`, for `publicKey`, valid at `now`: what a
 * worker checks before it keeps a certificate it was handed (on joining, and on renewal). Null when it is; else why not.
 */
export function checkIssuedWorker(o: { certPem: string; ca: X509Certificate; publicKey: KeyObject; id: string | null; fleet: string | null; now: Date }): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(o.certPem);
  } catch {
    return "the certificate does not parse";
  }
  if (!signs(o.ca, cert)) return "the certificate was not signed by the fleet CA";
  if (!cert.publicKey.equals(o.publicKey)) return "the certificate is not for this worker's key";
  const identity = identityFromSubjectAltName(cert.subjectAltName);
  if (identity?.role !== "worker") return `the certificate names ${identity ? `the ${identity.role} role` : "no fleet identity"}, not a worker`;
  if (o.id !== null && identity.id !== o.id) return `the certificate is for worker "${identity.id}", not "${o.id}"`;
  if (o.fleet !== null && identity.fleet !== o.fleet) return `the certificate is for fleet "${identity.fleet}", not "${o.fleet}"`;
  if (!validAt(cert, o.now)) return `the certificate is not valid now (${cert.validFrom} to ${cert.validTo})`;
  return null;
}
