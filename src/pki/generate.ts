// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from "node:crypto";
import type { Labels } from "../protocol/messages.js";
import { identityUri, type Identity } from "./identity.js";
import { labelUris } from "./labels-san.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

// ECDSA P-256: signing costs about a tenth of RSA-2048's, and handshakes are cheaper (docs/architecture.md, fixed decision 7).
const KEY_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;
const BACKDATE_MS = 5 * 60_000;

export interface Pem {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate extends Pem {
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and without a leading zero byte
  return bytes.toString("hex");
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

async function importSigningKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: "der", type: "pkcs8" });
  return (await webcrypto.subtle.importKey("pkcs8", der, KEY_ALG, false, ["sign"])) as CryptoKey;
}

/**
 * Backdating absorbs small clock differences between the host that issues and the hosts that verify; a
 * certificate meant to live minutes (tests, very short enrolled lifetimes) is backdated a tenth of its life, so
 * its renewal point is not already behind it when it is issued.
 */
function validity(lifetimeMs: number, now = Date.now()): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now - Math.min(BACKDATE_MS, Math.floor(lifetimeMs / 10))), notAfter: new Date(now + lifetimeMs) };
}

export async function createCa(options: { fleet: string; days: number }): Promise<Pem> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=mcp-fleet CA ${options.fleet}, O=mcp-fleet`,
    ...validity(options.days * DAY),
    keys,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A CA ready to sign: its certificate parsed and its key imported once, for an issuer that signs many. */
export interface CaSigner {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export async function caSigner(ca: Pem): Promise<CaSigner> {
  return { cert: new x509.X509Certificate(ca.certPem), key: await importSigningKey(ca.keyPem) };
}

export interface LeafOptions {
  identity: Identity;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Labels carried in the certificate (see labels-san.ts). */
  labels?: Labels;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The one leaf certificate this project issues, whoever made the key. A worker may only authenticate as a TLS
 * client; the manager serves TLS and may also be a client (as Consul server certificates are), so presenting it
 * on the worker endpoint reaches the role check and is refused there with its own close code.
 */
async function buildLeaf(signer: CaSigner, publicKey: CryptoKey, o: LeafOptions): Promise<x509.X509Certificate> {
  const caCert = signer.cert;
  const { role, id } = o.identity;
  const usages =
    role === "manager" ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth];
  const names: x509.JsonGeneralNames = [
    { type: "url", value: identityUri(o.identity) },
    ...labelUris(o.labels ?? {}).map((value) => ({ type: "url" as const, value })),
    ...(o.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(o.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  return x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${id}, OU=${role}, O=mcp-fleet`,
    issuer: caCert.subject,
    notBefore: o.notBefore,
    // A leaf never outlives its CA: verification would fail after the CA expires anyway.
    notAfter: o.notAfter < caCert.notAfter ? o.notAfter : caCert.notAfter,
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(usages, false),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
}

function issued(cert: x509.X509Certificate): { certPem: string; serialNumber: string; notBefore: Date; notAfter: Date } {
  return { certPem: cert.toString("pem"), serialNumber: cert.serialNumber.toLowerCase(), notBefore: cert.notBefore, notAfter: cert.notAfter };
}

/** Issues a leaf certificate with a new key, for `mcp-fleet certs` (the key is written beside it). */
export async function issueCertificate(options: {
  ca: Pem;
  identity: Identity;
  days: number;
  dnsNames?: string[];
  ipAddresses?: string[];
  labels?: Labels;
  /** Overrides for certificates that are deliberately not valid now (tests of expiry handling). */
  notBefore?: Date;
  notAfter?: Date;
}): Promise<IssuedCertificate> {
  const keys = await generateKeys();
  const span = validity(options.days * DAY);
  const cert = await buildLeaf(await caSigner(options.ca), keys.publicKey, {
    ...options,
    notBefore: options.notBefore ?? span.notBefore,
    notAfter: options.notAfter ?? span.notAfter,
  });
  return { ...issued(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

/**
 * Issues a certificate for a public key someone else holds (a CSR's): the host keeps its private key. The
 * lifetime is in milliseconds, since enrolled certificates may be meant to live minutes.
 */
export async function issueForPublicKey(options: {
  signer: CaSigner;
  publicKeyPem: string;
  identity: Identity;
  lifetimeMs: number;
  labels?: Labels;
}): Promise<Omit<IssuedCertificate, "keyPem">> {
  const spki = createPublicKey(options.publicKeyPem).export({ format: "der", type: "spki" });
  const publicKey = (await webcrypto.subtle.importKey("spki", spki, KEY_ALG, true, ["verify"])) as CryptoKey;
  const cert = await buildLeaf(options.signer, publicKey, { ...options, ...validity(options.lifetimeMs) });
  return issued(cert);
}

export interface RevokedEntry {
  serialNumber: string;
  revokedAt: Date;
}

// id-ce-cRLNumber (RFC 5280 §5.2.3): a non-critical INTEGER that grows with every CRL the CA issues.
const CRL_NUMBER_OID = "2.5.29.20";

/** DER INTEGER of a non-negative number: big-endian, with a leading zero byte when the top bit is set. */
function derInteger(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let body = Buffer.from(hex, "hex");
  if (body[0]! & 0x80) body = Buffer.concat([Buffer.from([0]), body]);
  if (body.length > 20) throw new RangeError("a CRL number has at most 20 octets");
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

function readDerInteger(der: ArrayBuffer): bigint | null {
  const bytes = Buffer.from(der);
  if (bytes.length < 3 || bytes[0] !== 0x02 || bytes[1] !== bytes.length - 2 || bytes[1]! > 21) return null;
  if (bytes[2]! & 0x80) return null; // negative: not a CRL number
  return BigInt(`0x${bytes.subarray(2).toString("hex")}`);
}

/**
 * Writes the CA's CRL, numbered `number`. nextUpdate is the CA's own expiry: tools that check CRLs (OpenSSL
 * among them) refuse everything once one is past nextUpdate, and this CRL is distributed as a file, not fetched,
 * so a short one would only cause outages. The number is what lets a reader refuse an older CRL put back in
 * place of a newer one (which would un-revoke certificates).
 */
export async function createCrl(options: { ca: Pem; revoked: RevokedEntry[]; number?: bigint }): Promise<string> {
  const caCert = new x509.X509Certificate(options.ca.certPem);
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subject,
    thisUpdate: new Date(Date.now() - BACKDATE_MS),
    nextUpdate: caCert.notAfter,
    entries: options.revoked.map((r) => ({
      serialNumber: r.serialNumber,
      revocationDate: r.revokedAt,
      reason: x509.X509CrlReason.cessationOfOperation,
    })),
    signingKey: await importSigningKey(options.ca.keyPem),
    signingAlgorithm: SIGN_ALG,
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      new x509.Extension(CRL_NUMBER_OID, false, derInteger(options.number ?? 1n)),
    ],
  });
  // The library labels it "CRL"; OpenSSL, and so Node, only read the "X509 CRL" label.
  return x509.PemConverter.encode(crl.rawData, "X509 CRL");
}

export interface CrlFacts {
  entries: RevokedEntry[];
  /** The CRL number, or null for a CRL without one (written before CRLs were numbered). */
  number: bigint | null;
  thisUpdate: Date;
}

export function readCrl(pem: string): CrlFacts {
  const crl = new x509.X509Crl(pem);
  const ext = crl.extensions.find((e) => e.type === CRL_NUMBER_OID);
  return {
    entries: crl.entries.map((e) => ({ serialNumber: e.serialNumber.toLowerCase(), revokedAt: e.revocationDate })),
    number: ext ? readDerInteger(ext.value) : null,
    thisUpdate: crl.thisUpdate,
  };
}

export function readCrlEntries(pem: string): RevokedEntry[] {
  return readCrl(pem).entries;
}

/** True if `crlPem` is a CRL signed by the CA in `caPem`. */
export async function crlSignedBy(crlPem: string, caPem: string): Promise<boolean> {
  try {
    const crl = new x509.X509Crl(crlPem);
    const ca = new x509.X509Certificate(caPem);
    return await crl.verify({ publicKey: await ca.publicKey.export() });
  } catch {
    return false;
  }
}
