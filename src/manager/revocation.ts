import { readFile } from "node:fs/promises";
import { unwatchFile, watchFile } from "node:fs";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { crlSignedBy, readCrl, type CrlFacts } from "../pki/generate.js";

// Checked this often for a changed CRL file: revocation takes effect within this plus a reload.
const WATCH_MS = 250;

export interface CrlUpdate {
  pem: Buffer;
  revoked: ReadonlySet<string>;
  reason: string;
}

/**
 * The fleet's revocation list, reloaded without a restart when the file changes (polled, so the atomic rename
 * `certs revoke` does is seen) or on request (SIGHUP). A CRL is applied only if the fleet CA signed it and it is
 * not older than the one in force: anyone who can write the file could otherwise un-revoke a certificate, with a
 * stranger's CRL or with an older one of the fleet's own, so a bad file is logged and the last good one kept.
 * Newer means a higher CRL number (`certs revoke` numbers each CRL above the last) and a thisUpdate no earlier;
 * the same file read again is no change.
 * The manager looks serials up here as each TLS handshake ends; OpenSSL is not given the CRL (see
 * `managerServerOptions`), so its nextUpdate does not refuse the whole fleet once it passes.
 */
export class Revocations {
  private revoked: ReadonlySet<string> = new Set();
  /** The CRL in force: its bytes, and its number and date, against which a reloaded file must move forward. */
  private current: { pem: Buffer; facts: CrlFacts } | null = null;
  private watching = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly caPem: Buffer,
    private readonly log: Logger,
    private readonly apply: (update: CrlUpdate) => void,
  ) {}

  isRevoked(serialNumber: string): boolean {
    return this.revoked.has(serialNumber.toLowerCase());
  }

  /** The first load: a CRL that is unreadable or not the fleet CA's stops the start, with the reason. */
  async load(): Promise<Buffer> {
    const pem = await readFile(this.path);
    const { revoked, facts } = await this.check(pem);
    this.revoked = revoked;
    this.current = { pem, facts };
    return pem;
  }

  watch(): void {
    this.watching = true;
    watchFile(this.path, { interval: WATCH_MS }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void this.reload("file changed");
    });
  }

  /** Re-reads the file; reloads queue behind each other so the last file written wins. */
  reload(reason: string): Promise<void> {
    this.chain = this.chain.then(async () => {
      try {
        const pem = await readFile(this.path);
        const { revoked, facts } = await this.check(pem);
        if (this.current && !pem.equals(this.current.pem)) notOlder(facts, this.current.facts, this.path);
        const added = [...revoked].filter((s) => !this.revoked.has(s));
        this.revoked = revoked;
        this.current = { pem, facts };
        this.apply({ pem, revoked, reason });
        this.log.info({ crl: this.path, reason, revoked: revoked.size, newlyRevoked: added }, "CRL reloaded");
      } catch (err) {
        this.log.error({ crl: this.path, reason, err: errorMessage(err) }, "CRL not reloaded; keeping the previous one");
      }
    });
    return this.chain;
  }

  stop(): void {
    if (this.watching) unwatchFile(this.path);
  }

  private async check(pem: Buffer): Promise<{ revoked: ReadonlySet<string>; facts: CrlFacts }> {
    const text = pem.toString("utf8");
    if (!(await crlSignedBy(text, this.caPem.toString("utf8")))) {
      throw new Error(`${this.path} is not a CRL signed by the fleet CA`);
    }
    const facts = readCrl(text);
    return { revoked: new Set(facts.entries.map((e) => e.serialNumber)), facts };
  }
}

/**
 * Throws, naming why, unless `next` is a later CRL than `current`. A CRL without a number can follow only one
 * without a number (CRLs written before numbering), and only with a later thisUpdate.
 */
function notOlder(next: CrlFacts, current: CrlFacts, path: string): void {
  const label = (n: bigint | null) => (n === null ? "none" : n.toString());
  if (current.number !== null && (next.number === null || next.number <= current.number)) {
    throw new Error(`${path} is an older CRL: its CRL number (${label(next.number)}) is not above the one in force (${current.number})`);
  }
  if (next.thisUpdate < current.thisUpdate || (current.number === null && next.number === null && next.thisUpdate <= current.thisUpdate)) {
    throw new Error(
      `${path} is an older CRL: it was issued ${next.thisUpdate.toISOString()}, not after the one in force (${current.thisUpdate.toISOString()})`,
    );
  }
}
