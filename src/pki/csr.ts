// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, createPublicKey, webcrypto, type KeyObject } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const KEY_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

async function keyPair(keyPem: string | undefined): Promise<{ keys: CryptoKeyPair; keyPem: string }> {
  if (!keyPem) {
    const keys = (await webcrypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
    const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    return { keys, keyPem: x509.PemConverter.encode(der, "PRIVATE KEY") };
  }
  const priv = createPrivateKey(keyPem);
  const privateKey = await webcrypto.subtle.importKey("pkcs8", priv.export({ format: "der", type: "pkcs8" }), KEY_ALG, false, ["sign"]);
  const publicKey = await webcrypto.subtle.importKey("spki", createPublicKey(priv).export({ format: "der", type: "spki" }), KEY_ALG, true, ["verify"]);
  return { keys: { privateKey, publicKey } as CryptoKeyPair, keyPem };
}

/**
 * A certificate request for worker `id`, with a new P-256 key unless `keyPem` is given. The manager takes only
 * the public key from it (and checks the signature): the subject is a courtesy for people reading it.
 */
export async function createCsr(o: { id: string; keyPem?: string }): Promise<{ csrPem: string; keyPem: string }> {
  const { keys, keyPem } = await keyPair(o.keyPem);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${o.id}, O=mcp-fleet`, keys, signingAlgorithm: SIGN_ALG });
  return { csrPem: csr.toString("pem"), keyPem };
}

/** SHA-256 hex of a key's DER SubjectPublicKeyInfo; a private key names its public half. */
export function keyFingerprint(key: string | Buffer | KeyObject): string {
  const pub = createPublicKey(key);
  return createHash("sha256").update(pub.export({ type: "spki", format: "der" })).digest("hex");
}
