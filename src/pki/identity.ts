import { X509Certificate } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { WORKER_ID_PATTERN, type Labels } from "../protocol/messages.js";
import { labelsFromSubjectAltName } from "./labels-san.js";
import { subjectAltNameUris } from "./san.js";

export const ROLES = ["manager", "worker", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/**
 * The roles `certs issue` gives: a worker connects at the worker path; an operator or a viewer is a person's MCP
 * client on the manager's /mcp endpoint (a viewer may only read). Each is accepted only where its role belongs.
 */
export const CLIENT_ROLES = ["worker", "operator", "viewer"] as const;
export type ClientRole = (typeof CLIENT_ROLES)[number];

/** Who a certificate speaks for. Carried as one URI subject alternative name: spiffe://<fleet>/<role>/<id>. */
export interface Identity {
  fleet: string;
  role: Role;
  id: string;
}

export const FLEET_NAME_PATTERN = WORKER_ID_PATTERN;

export function identityUri(identity: Identity): string {
  return `spiffe://${identity.fleet}/${identity.role}/${identity.id}`;
}

const URI_PATTERN = /^spiffe:\/\/([a-z0-9-]+)\/(manager|worker|operator|viewer)\/([a-z0-9-]+)$/;

export function parseIdentityUri(uri: string): Identity | null {
  const m = URI_PATTERN.exec(uri);
  if (!m) return null;
  const [, fleet, role, id] = m as unknown as [string, string, Role, string];
  if (!FLEET_NAME_PATTERN.test(fleet) || !WORKER_ID_PATTERN.test(id)) return null;
  return { fleet, role, id };
}

/**
 * Reads the identity from Node's `subjectAltName` text ("DNS:a, URI:spiffe://..."). More than one identity URI
 * is ambiguous and refused.
 */
export function identityFromSubjectAltName(san: string | undefined): Identity | null {
  const found: Identity[] = [];
  for (const uri of subjectAltNameUris(san)) {
    const id = parseIdentityUri(uri);
    if (id) found.push(id);
  }
  return found.length === 1 ? found[0]! : null;
}

export interface CertificateFacts {
  identity: Identity | null;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  fingerprint256: string;
  /** Labels the certificate itself carries (an enrolled host's token labels): they outrank self-reported ones. */
  labels: Labels;
}

export function describeCertificate(cert: X509Certificate): CertificateFacts {
  return {
    identity: identityFromSubjectAltName(cert.subjectAltName),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialNumber: cert.serialNumber.toLowerCase(),
    fingerprint256: cert.fingerprint256,
    labels: labelsFromSubjectAltName(cert.subjectAltName),
  };
}

/**
 * The same facts from a TLS socket's peer certificate object. Per connection this costs about a third of
 * `getPeerX509Certificate()`, which copies and re-decodes the certificate (OpenSSL 3 decodes keys slowly).
 */
export function describePeerCertificate(cert: PeerCertificate): CertificateFacts {
  return {
    identity: identityFromSubjectAltName(cert.subjectaltname),
    notBefore: new Date(cert.valid_from),
    notAfter: new Date(cert.valid_to),
    serialNumber: cert.serialNumber.toLowerCase(),
    fingerprint256: cert.fingerprint256,
    labels: labelsFromSubjectAltName(cert.subjectaltname),
  };
}

export function readCertificate(pem: string | Buffer): CertificateFacts {
  return describeCertificate(new X509Certificate(pem));
}
