import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
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

/** The SHA-256 of the fleet CA certificate (DER), as the key file records it. */
export function caFingerprint(caPem: Buffer): string {
  return createHash("sha256").update(new X509Certificate(caPem).raw).digest("hex");
}

/**
 * The key file: the keys and the CA they were made under. A ticket carries the verdict of the handshake that
 * issued it, so keys made under another CA would resume sessions that CA let in: a new CA means new keys.
 */
const KeyFile = z.object({
  version: z.literal(1),
  ca: z.string().regex(/^[0-9a-f]{64}$/),
  keys: z.string().base64().refine((b) => Buffer.from(b, "base64").length === TICKET_KEY_BYTES, "not one key set"),
});

/**
 * The keys a restarted manager needs to resume the sessions its predecessor made: a reconnect storm then costs
 * resumed handshakes (about half the CPU of a full one). Keys older than a week, made under another fleet CA than
 * `ca` (a fingerprint, see `caFingerprint`), or a file that does not parse are replaced by new random keys.
 */
export function loadTicketKeys(path: string, ca: string, log: Logger, now = Date.now()): Buffer {
  try {
    const age = now - statSync(path).mtimeMs;
    const parsed = KeyFile.safeParse(parseJson(readFileSync(path, "utf8")));
    if (!parsed.success) log.info({ file: path }, "TLS ticket key file malformed; making new keys");
    else if (parsed.data.ca !== ca) log.warn({ file: path }, "the fleet CA changed since the TLS ticket keys were made; discarding them, so no session made under the old CA resumes");
    else if (age < 0 || age >= TICKET_KEY_MAX_AGE_MS) log.info({ file: path, ageMs: Math.round(age) }, "TLS ticket keys expired; making new ones");
    else return Buffer.from(parsed.data.keys, "base64");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") log.warn({ file: path, err: errorMessage(err) }, "cannot read TLS ticket keys; making new ones");
  }
  return newTicketKeys(path, ca, log);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

/** Fresh random keys, saved to `path` if there is one (a manager without a state file keeps them in memory). */
export function newTicketKeys(path: string | null, ca: string, log: Logger): Buffer {
  const keys = randomBytes(TICKET_KEY_BYTES);
  if (path) saveTicketKeys(path, { version: 1, ca, keys: keys.toString("base64") }, log);
  return keys;
}

/** Private and atomic: whoever reads these keys can read resumed sessions' secrets. */
function saveTicketKeys(path: string, file: z.infer<typeof KeyFile>, log: Logger): void {
  try {
    writePrivateFileAtomic(path, JSON.stringify(file));
  } catch (err) {
    // Without the file a restart costs full handshakes, nothing worse.
    log.warn({ file: path, err: errorMessage(err) }, "cannot save TLS ticket keys; a restarted manager will not resume sessions");
  }
}
