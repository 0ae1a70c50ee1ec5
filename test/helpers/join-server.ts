import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createTlsServer, type Server, type TLSSocket } from "node:tls";
import type { AddressInfo, Socket } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const SIGN_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * Signs a CSR as the fleet CA would for an enrolled worker: the CSR's public key, our identity URI, the validity
 * given. Test-side only, so the worker's checks meet a certificate made independently of its own code.
 */
export async function signCsr(o: {
  ca: { certPem: string; keyPem: string };
  csrPem: string;
  fleet: string;
  role?: "worker" | "manager";
  id: string;
  notBefore?: Date;
  notAfter?: Date;
}): Promise<{ certPem: string; serialNumber: string }> {
  const csr = new x509.Pkcs10CertificateRequest(o.csrPem);
  const caCert = new x509.X509Certificate(o.ca.certPem);
  const der = createPrivateKey(o.ca.keyPem).export({ format: "der", type: "pkcs8" });
  const caKey = await webcrypto.subtle.importKey("pkcs8", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  const serialNumber = bytes.toString("hex");
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${o.id}, OU=${o.role ?? "worker"}, O=mcp-fleet`,
    issuer: caCert.subject,
    notBefore: o.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: o.notAfter ?? new Date(Date.now() + 86_400_000),
    publicKey: csr.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGN_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${o.fleet}/${o.role ?? "worker"}/${o.id}` }], false),
    ],
  });
  return { certPem: cert.toString("pem"), serialNumber };
}

export interface JoinServer {
  url: string;
  /** Application bytes received, per connection, after each handshake. */
  received: number[];
  handshakes: number;
  /** Connections that have closed, server side. */
  closed: number;
  /** Resolves once `n` connections have closed (bounded). */
  waitClosed(n: number, timeoutMs?: number): Promise<void>;
  /** Bodies of the POSTs, parsed. */
  requests: Array<{ path: string | undefined; body: unknown }>;
  close(): Promise<void>;
}

/**
 * A loopback TLS server that presents `cert` (a PEM chain) to anyone and answers each POST with `answer`. It
 * counts the application bytes every connection sends, so a test can show a client sent nothing.
 */
export async function startJoinServer(o: {
  cert: string;
  key: string;
  answer: (body: unknown) => Promise<{ status: number; body: unknown }> | { status: number; body: unknown };
}): Promise<JoinServer> {
  const state = { received: [] as number[], handshakes: 0, closed: 0, requests: [] as JoinServer["requests"] };
  const sockets = new Set<TLSSocket>();
  const onClose: Array<() => void> = [];
  const http = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      let body: unknown = null;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        body = Buffer.concat(chunks).toString("utf8");
      }
      state.requests.push({ path: req.url, body });
      const a = await o.answer(body);
      res.writeHead(a.status, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify(a.body));
    });
  });
  const server: Server = createTlsServer({ cert: o.cert, key: o.key, requestCert: false }, (socket: TLSSocket) => {
    state.handshakes++;
    const index = state.received.push(0) - 1;
    sockets.add(socket);
    socket.on("data", (c: Buffer) => (state.received[index]! += c.length));
    socket.on("close", () => sockets.delete(socket));
    http.emit("connection", socket);
  });
  // Counted on the TCP socket, so a connection that never finished its handshake counts too.
  server.on("connection", (raw: Socket) =>
    raw.on("close", () => {
      state.closed++;
      for (const f of onClose) f();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    url: `wss://127.0.0.1:${port}`,
    waitClosed: (n: number, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${state.closed} of ${n} connections closed in ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (state.closed >= n) {
            clearTimeout(t);
            resolve();
          }
        };
        onClose.push(check);
        check();
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
