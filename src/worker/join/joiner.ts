import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from "node:crypto";
import type { FleetBrowser } from "../../discovery/browser.js";
import type { Logger } from "../../log.js";
import { createCsr } from "../../pki/csr.js";
import { caPin, pinPrefix } from "../../pki/pin.js";
import type { JoinAnswer, JoinString } from "../../protocol/join.js";
import { loadTlsMaterial, type TlsMaterial } from "../../tls/contexts.js";
import { Backoff } from "../backoff.js";
import { ManagerCandidates } from "../candidates.js";
import { readPendingKey, saveEnrolledIdentity, writePendingKey, type EnrolledPaths } from "./enrolled-identity.js";
import { askToJoin, type AskOptions, type JoinAttempt } from "./join-client.js";
import { checkIssuedWorker } from "./manager-chain.js";

/** How long a request may wait at the manager for an operator's decision before the manager says "pending". */
export const JOIN_WAIT_MS = 20_000;

export interface JoinerOptions {
  join: JoinString;
  paths: EnrolledPaths;
  requestedId: string;
  hostname: string;
  /** A fixed manager URL (--manager); without it, managers announcing the pin's prefix on mDNS. */
  manager?: string;
  /** Started by the caller; null without mDNS. */
  browser: FleetBrowser | null;
  log: Logger;
  signal: AbortSignal;
  /** After a refusal: 5 s doubling to 5 min, full jitter. */
  refusalBackoff?: Backoff;
  /** After an unreachable manager or a garbled answer. */
  failureBackoff?: Backoff;
  /** With no candidate on mDNS, how long to wait for an announcement before looking again anyway. */
  idleRetryMs?: number;
  ask?: AskOptions;
}

/** Resolves after `ms`, or at once when `signal` is aborted or `wake` fires. */
function pause(ms: number, signal: AbortSignal, wake?: FleetBrowser | null): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      wake?.off("change", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    wake?.on("change", done);
  });
}

/** The pending key from an earlier attempt (so the manager sees the same request), or a new one, kept before use. */
async function pendingKey(o: JoinerOptions): Promise<string> {
  const earlier = readPendingKey(o.paths);
  if (earlier) {
    try {
      const key = createPrivateKey(earlier);
      if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return earlier;
    } catch {
      // Unreadable: replaced below.
    }
    o.log.warn({ file: o.paths.pendingKey }, "the pending key file is not a P-256 key; making a new one");
  }
  const { keyPem } = await createCsr({ id: o.requestedId });
  writePendingKey(o.paths, keyPem);
  return keyPem;
}

/** Why an issued answer cannot be kept, or null: the CA must be the pinned one and the certificate ours. */
export function checkIssuedAnswer(answer: Extract<JoinAnswer, { status: "issued" }>, pin: string, publicKey: KeyObject, now: Date): string | null {
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(answer.ca);
  } catch {
    return "the CA certificate in the answer does not parse";
  }
  if (caPin(answer.ca) !== pin) return "the CA certificate in the answer is not the pinned CA";
  return checkIssuedWorker({ certPem: answer.certificate, ca, publicKey, id: answer.id, fleet: null, now });
}

/**
 * Joins the fleet: asks managers until one issues a certificate for this host's key, keeps it in the state dir,
 * and returns the identity to start with; null when stopped first. Never gives up by itself: a refusal may be
 * lifted (a new token, an approval), and a host that joined later still joined.
 */
export async function joinFleet(o: JoinerOptions): Promise<TlsMaterial | null> {
  const log = o.log.child({ joining: o.requestedId });
  const keyPem = await pendingKey(o);
  const publicKey = createPublicKey(keyPem);
  const { csrPem } = await createCsr({ id: o.requestedId, keyPem });
  const refusals = o.refusalBackoff ?? new Backoff(5000, 300_000);
  const failures = o.failureBackoff ?? new Backoff(1000, 30_000);
  const candidates = o.manager ? null : new ManagerCandidates((a) => a.pin === pinPrefix(o.join.pin), o.browser);
  const idleRetryMs = o.idleRetryMs ?? 30_000;
  let current: string | null = null;
  let waitingFor: string | null = null;
  let lastFailure: string | null = null;
  log.info({ manager: o.manager ?? "mDNS", stateDir: o.paths.dir, token: o.join.token?.id ?? null }, "joining the fleet");
  while (!o.signal.aborted) {
    const url: string | null = current ?? o.manager ?? candidates!.next();
    if (url === null) {
      if (lastFailure !== "none") log.warn({ pin: pinPrefix(o.join.pin) }, "no manager of this fleet heard on mDNS yet; waiting for one to announce itself");
      lastFailure = "none";
      await pause(idleRetryMs, o.signal, o.browser);
      continue;
    }
    const startedAt = performance.now();
    const got: JoinAttempt = await askToJoin(url, o.join, { requestedId: o.requestedId, hostname: o.hostname, csr: csrPem, waitMs: JOIN_WAIT_MS }, o.signal, o.ask);
    current = null;
    switch (got.status) {
      case "aborted":
        return null;
      case "pin_mismatch":
      case "not_a_manager": {
        // Nothing was sent to it. With mDNS the next candidate is tried at once; a fixed one will say the same again.
        log.warn({ manager: url, reason: got.message }, got.status === "pin_mismatch" ? "pin_mismatch: not this fleet's manager; nothing sent to it" : "not_a_manager: nothing sent to it");
        lastFailure = got.status;
        if (candidates) candidates.reject(url);
        else await pause(refusals.next(), o.signal);
        break;
      }
      case "unreachable":
      case "bad_answer": {
        const delay = failures.next();
        const message = `${got.status}: ${got.message}`;
        log[lastFailure === message ? "debug" : "warn"]({ manager: url, retryInMs: delay }, `join attempt failed: ${message}`);
        lastFailure = message;
        await pause(delay, o.signal);
        break;
      }
      case "pending": {
        if (waitingFor !== got.requestId) log.info({ requestId: got.requestId, manager: url }, `waiting for an operator to approve join request ${got.requestId}`);
        waitingFor = got.requestId;
        failures.reset();
        lastFailure = null;
        // The manager holds the answer while it waits; one that answers at once is not asked again faster than this.
        const soon = Math.max(got.retryAfterMs, 1000 - (performance.now() - startedAt));
        if (soon > 0) await pause(soon, o.signal);
        current = url;
        break;
      }
      case "refused": {
        const delay = Math.max(refusals.next(), got.retryAfterMs ?? 0);
        log.warn({ code: got.code, message: got.message, manager: url, retryInMs: delay }, "join refused");
        lastFailure = got.code;
        waitingFor = null;
        await pause(delay, o.signal);
        break;
      }
      case "issued": {
        const problem = checkIssuedAnswer(got, o.join.pin, publicKey, new Date());
        if (problem) {
          const delay = refusals.next();
          log.error({ manager: url, reason: problem, retryInMs: delay }, "the manager issued a certificate this worker cannot use; not keeping it");
          await pause(delay, o.signal);
          break;
        }
        saveEnrolledIdentity(o.paths, { caPem: got.ca, certPem: got.certificate, keyPem });
        const material = loadTlsMaterial(o.paths, "worker");
        log.info({ id: got.id, manager: url, serial: material.self.serialNumber, notAfter: material.self.notAfter }, "joined the fleet");
        return material;
      }
    }
  }
  return null;
}
