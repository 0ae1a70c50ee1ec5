import { readFileSync } from "node:fs";
import { X509Certificate, type KeyObject } from "node:crypto";
import type { ServerOptions } from "node:https";
import { createSecureContext, type ConnectionOptions, type PeerCertificate, type TLSSocket } from "node:tls";
import { FleetError, errorMessage } from "../errors.js";
import { JOIN_SERVERNAME } from "../protocol/join.js";
import { signedBy } from "./signed-by.js";
import { describeCertificate, describePeerCertificate, identityFromSubjectAltName, type CertificateFacts, type Identity, type Role } from "../pki/identity.js";

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
  crl?: string;
}

/**
 * This process's own TLS material, checked once at start so a wrong path or a mismatched key fails loudly. The
 * CRL is not part of it: the manager checks revocation itself (see `gateUnauthorized`).
 */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  self: CertificateFacts & { identity: Identity };
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FleetError("E_CERT", `cannot read the ${what} ${path}: ${errorMessage(err)}`);
  }
}

/** This process's TLS material; its certificate must have `role` (or one of several, for an MCP client). */
export function loadTlsMaterial(paths: TlsPaths, role: Role | readonly Role[]): TlsMaterial {
  const roles: readonly Role[] = typeof role === "string" ? [role] : role;
  const ca = read(paths.ca, "CA certificate (--ca)");
  const cert = read(paths.cert, "certificate (--cert)");
  const key = read(paths.key, "private key (--key)");
  let facts: CertificateFacts;
  try {
    const own = new X509Certificate(cert);
    const caCert = new X509Certificate(ca);
    if (!own.checkIssued(caCert) || !own.verify(caCert.publicKey)) {
      throw new FleetError("E_CERT", `${paths.cert} was not issued by the CA in ${paths.ca}`);
    }
    facts = describeCertificate(own);
    createSecureContext({ ca, cert, key }); // throws on a key that does not match the certificate
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw new FleetError("E_CERT", `unusable TLS material (${paths.cert}, ${paths.key}): ${errorMessage(err)}`);
  }
  if (!facts.identity) throw new FleetError("E_CERT", `${paths.cert} carries no mcp-fleet identity`);
  if (!roles.includes(facts.identity.role)) {
    throw new FleetError("E_CERT", `${paths.cert} is a ${facts.identity.role} certificate; this command needs a ${roles.join(" or ")} certificate`);
  }
  return { ca, cert, key, self: { ...facts, identity: facts.identity } };
}

/**
 * The manager's listener: only the fleet CA is trusted, and a client certificate is requested. The decision is
 * made by `gateUnauthorized` as soon as the handshake ends, not by OpenSSL: with rejectUnauthorized Node drops
 * the socket without saying why, and an operator needs the reason (expired, revoked, unknown CA) in the log.
 *
 * A client that names JOIN_SERVERNAME gets the join context instead: the same key and trust, but the chain up to
 * the CA, because a joining host has only the CA's pin and must see the CA's certificate to check it.
 */
export function managerServerOptions(m: TlsMaterial): ServerOptions {
  const join = joinContext(m);
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    // No `crl`: given one, OpenSSL verifies the CRL's signature again in every full handshake (about 0.3 ms of
    // a 2 ms handshake, measured; docs/performance.md) and not at all in a resumed one. `gateUnauthorized` looks
    // the serial up in the parsed list instead, for both.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: "TLSv1.2",
    // Node derives the default from the command line, so a manager restarted with other flags could not resume
    // its predecessor's sessions. Fixed per role; tickets are only readable with this manager's keys anyway.
    sessionIdContext: "mcp-fleet-manager",
    // No context: the default one. Names are compared exactly, so only the join name leaves the worker path.
    SNICallback: (servername, callback) => callback(null, servername === JOIN_SERVERNAME ? join : undefined),
  };
}

function joinContext(m: TlsMaterial) {
  const chain = Buffer.concat([m.cert, Buffer.from("\n"), m.ca]);
  return createSecureContext({ ca: m.ca, cert: chain, key: m.key, minVersion: "TLSv1.2" });
}

/** Sockets with no client certificate that named JOIN_SERVERNAME: they may ask to join and nothing else. */
const joinSockets = new WeakSet<TLSSocket>();

/** Whether `gateUnauthorized` let this socket in to the join endpoint only (it has no client certificate). */
export function isJoinSocket(socket: TLSSocket): boolean {
  return joinSockets.has(socket);
}

/** The verified client certificate of a socket, from the end of its handshake until `peerCertificate` takes it. */
const verified = new WeakMap<TLSSocket, CertificateFacts>();

/**
 * Destroys every TLS connection whose client certificate did not verify or is revoked, before a byte of it is
 * read, and reports why. Registered first, so no other listener sees such a socket. Revocation is checked here,
 * against the fleet's CRL as `isRevoked` knows it, for resumed sessions as well as full handshakes.
 *
 * A resumed session carries the verdict of the handshake that issued its ticket, made under whatever CA that
 * manager trusted; given `caKey` (the fleet CA's public key), its certificate must be signed by that key, as a
 * full handshake's would. The ticket keys are also replaced when the CA changes (ticket-keys.ts); this check holds
 * even if a key file is carried over by hand.
 *
 * A socket with no client certificate at all is let through only when it named JOIN_SERVERNAME, and is marked
 * as a join socket (`isJoinSocket`): the manager's HTTP handlers then let it post a join request and nothing else.
 * A certificate presented on such a connection is judged like any other.
 */
export function gateUnauthorized(
  server: { prependListener(event: "secureConnection", fn: (socket: TLSSocket) => void): unknown },
  onRefused: (info: { address: string | undefined; reason: string; subject: string | null; resumed: boolean }) => void,
  isRevoked: (serialNumber: string) => boolean = () => false,
  caKey: KeyObject | null = null,
): void {
  server.prependListener("secureConnection", (socket: TLSSocket) => {
    if (socket.authorized) {
      const cert = socket.getPeerCertificate();
      if (cert?.serialNumber) {
        const facts = describePeerCertificate(cert);
        const resumed = socket.isSessionReused();
        // OpenSSL's names for these verdicts, so the log reads as it does when OpenSSL decides.
        const reason = isRevoked(facts.serialNumber)
          ? "CERT_REVOKED"
          : resumed && caKey && !signedBy(cert.raw, caKey)
            ? "UNABLE_TO_VERIFY_LEAF_SIGNATURE"
            : null;
        if (!reason) return void verified.set(socket, facts);
        const subject = Object.entries(cert.subject ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(", ");
        onRefused({ address: socket.remoteAddress, reason, subject, resumed });
        return void socket.destroy();
      }
    }
    const peer = socket.getPeerX509Certificate();
    if (!peer && socket.servername === JOIN_SERVERNAME) return void joinSockets.add(socket);
    const reason = socket.authorizationError ? String(socket.authorizationError) : "no client certificate";
    onRefused({
      address: socket.remoteAddress,
      reason: peer ? reason : "no client certificate",
      subject: peer?.subject.replace(/\n/g, ", ") ?? null,
      resumed: socket.isSessionReused(),
    });
    socket.destroy();
  });
}

export const NOT_A_MANAGER = "ERR_MCP_FLEET_NOT_A_MANAGER";

/**
 * Where the manager was found (an address, an mDNS name, a URL) proves nothing, so the host name is not checked;
 * instead the certificate must chain to the fleet CA (OpenSSL checks that) and name the manager role of this
 * fleet (checked here).
 */
function managerIdentityCheck(fleet: string): ConnectionOptions["checkServerIdentity"] {
  return (_host: string, cert: PeerCertificate) => {
    const id = identityFromSubjectAltName(cert.subjectaltname);
    if (id?.role === "manager" && id.fleet === fleet) return undefined;
    const err = new Error(
      `the server's certificate is not a manager of fleet "${fleet}" (it names ${id ? `${id.role} of fleet "${id.fleet}"` : "no fleet identity"})`,
    ) as Error & { code: string };
    err.code = NOT_A_MANAGER;
    return err;
  };
}

/** The worker's side: its own certificate, and only a manager of its fleet on the other end. */
export function workerClientOptions(m: TlsMaterial): ConnectionOptions {
  return {
    ca: m.ca,
    cert: m.cert,
    key: m.key,
    minVersion: "TLSv1.2",
    rejectUnauthorized: true,
    checkServerIdentity: managerIdentityCheck(m.self.identity.fleet),
  };
}

/**
 * An operator's or viewer's MCP client on the manager's /mcp endpoint: the same trust as a worker's, for an HTTP
 * client (undici's `connect` options) rather than a WebSocket.
 */
export function mcpClientOptions(m: TlsMaterial): ConnectionOptions {
  return workerClientOptions(m);
}

/**
 * The verified, unrevoked peer behind a TLS socket, as `gateUnauthorized` found it at the end of the handshake
 * (reading the certificate costs ~50 µs: once per connection is enough); null if it did not let the socket in.
 * Taken, not read: a manager holds 10,000 sockets, and their sessions keep only what they use.
 */
export function peerCertificate(socket: TLSSocket): CertificateFacts | null {
  const facts = verified.get(socket);
  verified.delete(socket);
  return socket.authorized ? (facts ?? null) : null;
}
