// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API loaded first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPublicKey, webcrypto, X509Certificate } from "node:crypto";
import { request } from "node:https";
import type { TLSSocket } from "node:tls";
import { JOIN_PATH, JOIN_PROTOCOL, JOIN_SERVERNAME } from "../../src/protocol/join.js";
import { runCli } from "./processes.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** `mcp-fleet token create` in `dir`: the join string it prints once, and the token's id read from it. */
export async function createToken(dir: string, args: string[] = []): Promise<{ join: string; id: string; secret: string }> {
  const r = await runCli(["token", "create", "--dir", dir, ...args]);
  if (r.code !== 0) throw new Error(`token create ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  const lines = r.stdout.trim().split("\n");
  if (lines.length !== 1) throw new Error(`token create printed ${lines.length} lines on stdout: ${r.stdout}`);
  const m = /^mcpf1:([a-z0-9]{6})\.([a-z0-9]{24}):sha256:[0-9a-f]{64}$/.exec(lines[0]!);
  if (!m) throw new Error(`not a join string: ${lines[0]}`);
  return { join: lines[0]!, id: m[1]!, secret: m[2]! };
}

/** SHA-256 of a key's DER SubjectPublicKeyInfo, hex: how the manager names a request's key. */
export function spkiSha256(keyPem: string | Buffer): string {
  const spki = createPublicKey(keyPem).export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

/**
 * A CSR made by hand, saying whatever a hostile host wants it to say: any subject, any SAN URIs and DNS names.
 * The manager must take from it only the public key.
 */
export async function craftCsr(o: { subject: string; uris?: string[]; dns?: string[] }): Promise<{ csrPem: string; keyPem: string }> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const names = [...(o.uris ?? []).map((value) => ({ type: "url" as const, value })), ...(o.dns ?? []).map((value) => ({ type: "dns" as const, value }))];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: o.subject,
    keys,
    signingAlgorithm: alg,
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { csrPem: csr.toString("pem"), keyPem: x509.PemConverter.encode(der, "PRIVATE KEY") };
}

export interface RawJoinOutcome {
  status: number;
  answer: Record<string, unknown>;
  /** The chain the manager presented, leaf first (from getPeerCertificate(true)). */
  chain: X509Certificate[];
}

/**
 * One POST to the join endpoint as a joining host sends it, with nothing of the real worker's: SNI the join name,
 * no client certificate, any body. The chain the manager presented is returned for the test to check.
 */
export function postJoin(host: string, port: number, body: Record<string, unknown>, timeoutMs = 30_000): Promise<RawJoinOutcome> {
  const payload = JSON.stringify({ protocol: JOIN_PROTOCOL, waitMs: 0, ...body });
  return new Promise((resolve, reject) => {
    const chain: X509Certificate[] = [];
    const req = request(
      {
        host,
        port,
        method: "POST",
        path: JOIN_PATH,
        servername: JOIN_SERVERNAME,
        rejectUnauthorized: false,
        agent: false,
        timeout: timeoutMs,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, answer: JSON.parse(text) as Record<string, unknown>, chain });
          } catch {
            reject(new Error(`join endpoint answered HTTP ${res.statusCode} with non-JSON: ${text.slice(0, 300)}`));
          }
        });
      },
    );
    req.on("socket", (s) => {
      (s as TLSSocket).once("secureConnect", () => {
        let c = (s as TLSSocket).getPeerCertificate(true);
        const seen = new Set<string>();
        while (c && c.raw && !seen.has(c.fingerprint256)) {
          seen.add(c.fingerprint256);
          chain.push(new X509Certificate(c.raw));
          c = c.issuerCertificate;
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no join answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}
