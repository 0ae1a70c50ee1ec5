import type { CertificateFacts } from "../pki/identity.js";

/** The roles whose certificates may open an MCP session over HTTP; an operator may act, a viewer only read. */
export const MCP_ROLES = ["operator", "viewer"] as const;
export type McpRole = (typeof MCP_ROLES)[number];

/**
 * Who is behind an MCP session over HTTP, from the client certificate the manager verified. The stdio server has
 * none: whoever can start the manager owns its stdin, and is its operator.
 */
export interface Principal {
  /** The certificate's id: the person's name as `certs issue --role operator|viewer` was given it. */
  id: string;
  role: McpRole;
  serialNumber: string;
  fingerprint256: string;
  /** When the certificate expires (ms since the epoch): its sessions end then. */
  notAfter: number;
}

/** The principal a verified certificate names, or null when it is not an operator or viewer of `fleet`. */
export function principalOf(cert: CertificateFacts, fleet: string): Principal | null {
  const id = cert.identity;
  if (!id || id.fleet !== fleet || (id.role !== "operator" && id.role !== "viewer")) return null;
  return { id: id.id, role: id.role, serialNumber: cert.serialNumber, fingerprint256: cert.fingerprint256, notAfter: cert.notAfter.getTime() };
}
