import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import { loadTlsMaterial, type TlsMaterial, type TlsPaths } from "../tls/contexts.js";
import { Revocations, type CrlUpdate } from "./revocation.js";
import { caFingerprint, loadTicketKeys, newTicketKeys, ticketKeyPath } from "./ticket-keys.js";

/** What the manager's TLS needs: its own material, the TLS ticket keys, and the fleet's CRL if there is one. */
export interface Credentials {
  material: TlsMaterial;
  ticketKeys: Buffer;
  revocations: Revocations | null;
}

/**
 * Loads and checks them. A CRL that is unreadable or not the fleet CA's stops the start; an own certificate that is
 * not valid now does not (the MCP client still gets answers; every worker refuses the manager and says why).
 * `onRevoked` runs after each CRL reload with the serials it lists.
 */
export async function loadCredentials(
  tls: TlsPaths,
  stateFile: string | undefined,
  log: Logger,
  onRevoked: (update: CrlUpdate) => void,
): Promise<Credentials> {
  const material = loadTlsMaterial(tls, "manager");
  const { notBefore, notAfter } = material.self;
  if (Date.now() > notAfter.getTime() || Date.now() < notBefore.getTime()) {
    log.error({ cert: tls.cert, notBefore, notAfter }, "this manager's certificate is not valid now; workers will refuse it");
  }
  const ca = caFingerprint(material.ca);
  const ticketKeys = stateFile ? loadTicketKeys(ticketKeyPath(stateFile), ca, log) : newTicketKeys(null, ca, log);
  // Handshakes look serials up in this list as they end, resumed ones too, so a new list needs neither a new TLS
  // context nor new ticket keys: only the live sessions it revokes are closed.
  const revocations = tls.crl ? new Revocations(tls.crl, material.ca, log, onRevoked) : null;
  if (revocations) {
    try {
      await revocations.load();
    } catch (err) {
      throw new FleetError("E_CERT", `cannot use the CRL (--crl) ${tls.crl}: ${errorMessage(err)}`);
    }
  }
  return { material, ticketKeys, revocations };
}
