import { createHash } from "node:crypto";
import type { Clock } from "../core/clock.js";
import type { Registry } from "../core/registry.js";
import { errorMessage, FleetError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Labels } from "../protocol/messages.js";
import { InstallResult, RenewResult } from "../protocol/renewal.js";
import type { Issuer } from "./issuer.js";

/** Renewal starts at two thirds of a certificate's life, give or take this much of it. */
const RENEW_AT = 2 / 3;
const JITTER = 0.05;
/** Renewals in flight over the whole fleet at once: signing is cheap, but each is two requests and a file write. */
export const MAX_RENEWALS_IN_FLIGHT = 16;
/** A failed renewal is tried again after this long; the certificate still has about a third of its life. */
export const RENEWAL_RETRY_MS = 60_000;
/** How long the worker has to answer each of the two requests. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * When a certificate is renewed: notBefore + life × (2/3 ± 5 %). The jitter comes from the serial, so the point
 * of one certificate is the same across ticks and manager restarts, and a fleet enrolled in one afternoon does not
 * renew in one second.
 */
export function renewalPoint(notBefore: number | Date, notAfter: number | Date, serial: string): number {
  const from = typeof notBefore === "number" ? notBefore : notBefore.getTime();
  const to = typeof notAfter === "number" ? notAfter : notAfter.getTime();
  const u = createHash("sha256").update(serial).digest().readUInt32BE(0) / 0x1_0000_0000; // [0, 1)
  return from + (to - from) * (RENEW_AT + (2 * u - 1) * JITTER);
}

/** What the scheduler needs of a worker session (src/manager/session.ts). */
export interface RenewableSession {
  readonly workerId: string;
  readonly sessionId: string;
  readonly isOpen: boolean;
  readonly renewable: boolean;
  held: { serialNumber: string; notBefore: number; notAfter: number };
  readonly certLabels: Labels;
  request(method: string, params: unknown, options: { timeoutMs: number }): Promise<unknown>;
}

export interface RenewalParts {
  /** Every live session; only a worker's current, open, renewable one is renewed. */
  sessions: Iterable<RenewableSession> & { current(workerId: string): RenewableSession | undefined };
  registry: Pick<Registry, "certificateRenewed">;
  issuer: Issuer;
  lifetimeMs: number;
  clock: Clock;
  log: Logger;
}

/**
 * Renews enrolled workers' certificates over their live sessions, on the manager's clock: the worker only answers
 * (certificate.renew gives a CSR for a new key, certificate.install takes the certificate). At most one renewal per
 * worker and MAX_RENEWALS_IN_FLIGHT over the fleet at once.
 */
export class RenewalScheduler {
  private readonly inFlight = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  /** Each held certificate's renewal point, computed once (a hash per session per second adds up at 10,000). */
  private readonly points = new WeakMap<object, number>();

  constructor(private readonly parts: RenewalParts) {}

  get renewing(): number {
    return this.inFlight.size;
  }

  /** Starts the renewals that are due. Called on the manager's slow chore (every second). */
  tick(): void {
    const now = this.parts.clock.wall();
    for (const [id, at] of this.retryAt) if (now >= at) this.retryAt.delete(id);
    for (const s of this.parts.sessions) {
      if (this.inFlight.size >= MAX_RENEWALS_IN_FLIGHT) return;
      if (!s.renewable || !s.isOpen || this.inFlight.has(s.workerId) || this.retryAt.has(s.workerId)) continue;
      if (now < this.pointOf(s.held)) continue;
      if (this.parts.sessions.current(s.workerId) !== s) continue;
      void this.renew(s);
    }
  }

  private pointOf(held: RenewableSession["held"]): number {
    let at = this.points.get(held);
    if (at === undefined) this.points.set(held, (at = renewalPoint(held.notBefore, held.notAfter, held.serialNumber)));
    return at;
  }

  private async renew(s: RenewableSession): Promise<void> {
    const { issuer, registry, log, lifetimeMs } = this.parts;
    const worker = s.workerId;
    this.inFlight.add(worker);
    try {
      const asked = RenewResult.safeParse(await s.request("certificate.renew", { newKey: true }, { timeoutMs: REQUEST_TIMEOUT_MS }));
      if (!asked.success) throw new FleetError("E_BAD_RESPONSE", "certificate.renew answer does not match the protocol");
      // Same id and the same labels: a renewal changes the key and the dates, nothing the operator decided.
      const cert = await issuer.issue({ csrPem: asked.data.csr, id: worker, labels: s.certLabels, lifetimeMs, source: "renewal" });
      const installed = InstallResult.safeParse(
        await s.request("certificate.install", { certificate: cert.certPem }, { timeoutMs: REQUEST_TIMEOUT_MS }),
      );
      if (!installed.success) throw new FleetError("E_BAD_RESPONSE", "certificate.install answer does not match the protocol");
      if (installed.data.serialNumber !== cert.serialNumber) {
        throw new FleetError("E_BAD_RESPONSE", `the worker installed serial ${installed.data.serialNumber}, not ${cert.serialNumber}`);
      }
      s.held = { serialNumber: cert.serialNumber, notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime() };
      registry.certificateRenewed(worker, s.sessionId, { serial: cert.serialNumber, notBefore: s.held.notBefore, notAfter: s.held.notAfter });
      log.info({ worker, serial: cert.serialNumber, notAfter: cert.notAfter.toISOString() }, "certificate renewed");
    } catch (err) {
      this.retryAt.set(worker, this.parts.clock.wall() + RENEWAL_RETRY_MS);
      log.warn({ worker, err: errorMessage(err), retryInMs: RENEWAL_RETRY_MS }, "certificate renewal failed; trying again later");
    } finally {
      this.inFlight.delete(worker);
    }
  }
}
