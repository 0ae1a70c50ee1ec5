import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { writePrivateFileAtomic } from "./private-file.js";

/** Node's ticket keys: 16 bytes of name, 16 of HMAC secret, 16 of AES key. */
export const TICKET_KEY_BYTES = 48;

/**
 * How long a session ticket stays usable (the TLS session lifetime the manager sets). A worker holds the ticket
 * of its last handshake for as long as its session lasts, so this must be long for a restarted manager to
 * resume sessions that have been up for hours; Node's default of 5 minutes would resume almost none.
 */
export const TICKET_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** Keys found older than this at start are replaced, so a leaked key file stops opening new tickets. */
export const TICKET_KEY_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;

/** The file beside the state file that keeps the keys; private to the manager's user, like the state. */
export function ticketKeyPath(stateFile: string): string {
  return `${stateFile}.ticket-keys`;
}

/**
 * The keys a restarted manager needs to resume the sessions its predecessor made: a reconnect storm then costs
 * resumed handshakes (about half the CPU of a full one). Keys older than a week, or a file that is not exactly
 * one key set, are replaced by new random keys.
 */
export function loadTicketKeys(path: string, log: Logger, now = Date.now()): Buffer {
  try {
    const age = now - statSync(path).mtimeMs;
    const keys = readFileSync(path);
    if (keys.length === TICKET_KEY_BYTES && age >= 0 && age < TICKET_KEY_MAX_AGE_MS) return keys;
    log.info({ file: path, bytes: keys.length, ageMs: Math.round(age) }, "TLS ticket keys expired or malformed; making new ones");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") log.warn({ file: path, err: errorMessage(err) }, "cannot read TLS ticket keys; making new ones");
  }
  return newTicketKeys(path, log);
}

/** Fresh random keys, saved to `path` if there is one (a manager without a state file keeps them in memory). */
export function newTicketKeys(path: string | null, log: Logger): Buffer {
  const keys = randomBytes(TICKET_KEY_BYTES);
  if (path) saveTicketKeys(path, keys, log);
  return keys;
}

/** Private and atomic: whoever reads these keys can read resumed sessions' secrets. */
function saveTicketKeys(path: string, keys: Buffer, log: Logger): void {
  try {
    writePrivateFileAtomic(path, keys);
  } catch (err) {
    // Without the file a restart costs full handshakes, nothing worse.
    log.warn({ file: path, err: errorMessage(err) }, "cannot save TLS ticket keys; a restarted manager will not resume sessions");
  }
}
