// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, createPublicKey, KeyObject, webcrypto } from "node:crypto";
// generate.ts sets the library's crypto provider; importing it here keeps that true for CSR-only callers.
import "./generate.js";

type CryptoKey = webcrypto.CryptoKey;

const KEY_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * SHA-256 of a key's public half as DER SubjectPublicKeyInfo, in hex: what names a host's key in join requests,
 * the inventory and `mcp-fleet worker --show-key`. A private key gives its public key's fingerprint.
 */
export function keyFingerprint(key: string | Buffer | KeyObject): string {
  const object = key instanceof KeyObject ? key : isPrivatePem(key) ? createPrivateKey(key) : createPublicKey(key);
  const pub = object.type === "public" ? object : createPublicKey(object);
  const spki = pub.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

function isPrivatePem(key: string | Buffer): boolean {
  return /-----BEGIN (?:EC |ENCRYPTED )?PRIVATE KEY-----/.test(key.toString());
}

async function keyPair(keyPem: string | undefined): Promise<{ keys: webcrypto.CryptoKeyPair; keyPem: string }> {
  if (keyPem === undefined) {
    const keys = (await webcrypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    return { keys, keyPem: x509.PemConverter.encode(der, "PRIVATE KEY") };
  }
  const priv = createPrivateKey(keyPem);
  const pkcs8 = priv.export({ format: "der", type: "pkcs8" });
  const spki = createPublicKey(priv).export({ format: "der", type: "spki" });
  const privateKey = (await webcrypto.subtle.importKey("pkcs8", pkcs8, KEY_ALG, false, ["sign"])) as CryptoKey;
  const publicKey = (await webcrypto.subtle.importKey("spki", spki, KEY_ALG, true, ["verify"])) as CryptoKey;
  return { keys: { privateKey, publicKey }, keyPem };
}

/**
 * A certificate request for worker `id` with a new P-256 key, or with `keyPem`'s. The manager reads only the
 * public key from it: the identity and everything else are its own decision.
 */
export async function createCsr(o: { id: string; keyPem?: string }): Promise<{ csrPem: string; keyPem: string }> {
  const { keys, keyPem } = await keyPair(o.keyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${o.id}, O=mcp-fleet`,
    keys,
    signingAlgorithm: SIGN_ALG,
  });
  return { csrPem: csr.toString("pem"), keyPem };
}

/**
 * Checks a CSR as the manager must before signing its key: one PEM certificate request, a P-256 public key, and
 * a signature made by that key (so whoever sent it holds the private key).
 */
export async function inspectCsr(
  pem: string,
): Promise<{ ok: true; publicKeyPem: string; keyFingerprint: string } | { ok: false; error: string }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    return { ok: false, error: "not a PEM certificate request" };
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: "der", type: "spki" });
  } catch {
    return { ok: false, error: "the request's public key is unreadable" };
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    return { ok: false, error: `the request's key must be ECDSA P-256, not ${describeKey(key)}` };
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, error: "the request's signature is not by its own key" };
  return { ok: true, publicKeyPem: key.export({ type: "spki", format: "pem" }).toString(), keyFingerprint: keyFingerprint(key) };
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const bits = key.asymmetricKeyDetails?.modulusLength;
  return `${key.asymmetricKeyType ?? "unknown"}${curve ? ` ${curve}` : ""}${bits ? ` ${bits}` : ""}`;
}
