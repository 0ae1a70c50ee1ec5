import { unwatchFile, watchFile } from "node:fs";
import { systemClock, type Clock } from "../core/clock.js";
import { errorMessage, FleetError, isFleetError } from "../errors.js";
import type { Logger } from "../log.js";
import { inspectCsr } from "../pki/csr.js";
import { JOIN_REFUSAL_TEXT, type JoinAnswer, type JoinRefusal, type JoinRequest } from "../protocol/join.js";
import type { Approver, JoinDecisionResult, JoinService } from "./api.js";
import {
  answerFor,
  approverText,
  awaitingIssue,
  decisionsBetween,
  dropForgotten,
  forgettable,
  newRequestRecord,
  placeNew,
  refusal,
  requestView,
  standingOf,
  TOO_MANY_RETRY_MS,
  type Standing,
} from "./decide.js";
import type { Issuer } from "./issuer.js";
import { decideRequest, pendingRequests } from "./join-records.js";
import { readJoinFile, updateJoinFile, type JoinFile, type RequestRecord } from "./token-file.js";
import { checkToken, newRequestId, type TokenRecord } from "./tokens.js";

// Checked this often for decisions made in the file (`mcp-fleet token approve|deny`), like the CRL.
const WATCH_MS = 250;
const PRUNE_EVERY_MS = 60_000;
export const DEFAULT_MAX_PENDING = 100;

export interface EnrollmentOptions {
  /** The join file (tokens.json beside the CA). */
  tokensPath: string;
  /** Null: no CA key, so nobody is enrolled. */
  issuer: Issuer | null;
  lifetimeMs: number;
  maxPending?: number;
  clock?: Clock;
  log: Logger;
  /** Certificates were revoked (a replace token took their id): the CRL on disk changed. */
  onRevoked?: (serials: string[]) => void;
}

/** The manager's side of joining: the join endpoint asks `join`, the MCP tools the rest. */
export interface EnrollmentService extends JoinService {
  /** Decides one well-formed join request; a pending one may be held up to `request.waitMs`, or until `signal`. */
  join(request: JoinRequest, address: string | null, signal: AbortSignal): Promise<JoinAnswer>;
  /** Reads the join file and starts watching it. */
  start(): Promise<void>;
  /** Stops watching; waiting hosts are told `pending` (they ask the next manager). */
  stop(): void;
}

/** `transient`: it may work when asked again (a busy lock, a full disk); the host is not given a refusal for it. */
type Issued = { ok: true; request: RequestRecord } | { ok: false; code: JoinRefusal; message: string; transient?: boolean };

export function createEnrollmentService(o: EnrollmentOptions): EnrollmentService {
  return new Enrollment(o);
}

const EMPTY: JoinFile = { version: 1, tokens: [], requests: [] };

/**
 * Join requests as the join file holds them: the file is the state (so the command line can decide on the same
 * host), read afresh for each request and watched for decisions; this process keeps a copy for the lists and the
 * hosts waiting on a long poll, and issues the certificates of approved requests.
 */
class Enrollment implements EnrollmentService {
  readonly enabled: boolean;
  private file: JoinFile = EMPTY;
  private chain: Promise<void> = Promise.resolve();
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Approved requests being issued now: the watcher and an approval share one issuance. */
  private readonly issuing = new Map<string, Promise<Issued>>();
  /** Approved requests that cannot be issued (their id was taken meanwhile): the host is told so. */
  private readonly failed = new Map<string, { code: JoinRefusal; message: string }>();
  /** Decisions made in this process, already logged: the watcher does not log them again. */
  private readonly decidedHere = new Set<string>();
  private readonly clock: Clock;
  private readonly maxPending: number;
  private watching = false;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: EnrollmentOptions) {
    this.enabled = o.issuer !== null;
    this.clock = o.clock ?? systemClock;
    this.maxPending = o.maxPending ?? DEFAULT_MAX_PENDING;
  }

  private now(): Date {
    return new Date(this.clock.wall());
  }

  async start(): Promise<void> {
    if (!this.enabled) return;
    await this.refresh();
    this.watching = true;
    watchFile(this.o.tokensPath, { interval: WATCH_MS }, (cur, prev) => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) void this.refresh();
    });
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  stop(): void {
    if (this.watching) unwatchFile(this.o.tokensPath);
    this.watching = false;
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  listRequests() {
    const now = this.now();
    return pendingRequests(this.file, now).map((r) => requestView(r, now));
  }

  async approve(requestId: string, by: Approver): Promise<JoinDecisionResult> {
    const issuer = this.requireIssuer(requestId);
    const record = await this.decide(requestId, "approved", by);
    const issued = await this.ensureIssued(issuer, record);
    if (!issued.ok) throw new FleetError("E_JOIN", `join request ${requestId} was approved but not issued: ${issued.message}`);
    return { requestId, workerId: record.requestedId, serialNumber: issued.request.serialNumber, notAfter: issued.request.notAfter };
  }

  async deny(requestId: string, by: Approver): Promise<JoinDecisionResult> {
    this.requireIssuer(requestId);
    const record = await this.decide(requestId, "denied", by);
    return { requestId, workerId: record.requestedId };
  }

  async join(request: JoinRequest, address: string | null, signal: AbortSignal): Promise<JoinAnswer> {
    const issuer = this.o.issuer;
    if (!issuer) return refusal("enrollment_disabled");
    await this.refresh();
    const now = this.now();
    const csr = await inspectCsr(request.csr);
    // The same key asking again finds its request, whatever became of the token it first came with since.
    if (csr.ok) {
      const standing = standingOf(this.file, csr.keyFingerprint, now);
      if (standing.kind !== "none") return this.answer(issuer, csr.keyFingerprint, standing, request.waitMs, signal);
    }
    let token: TokenRecord | null = null;
    if (request.token) {
      const checked = checkToken(this.file.tokens, request.token, now);
      if (!checked.ok) return refusal(checked.code);
      token = checked.record;
    }
    if (!csr.ok) return refusal("bad_csr");
    if (!token?.replace && (await issuer.heldByOther(request.requestedId, csr.keyFingerprint, now))) return refusal("id_taken");
    const place = placeNew(this.file, token, now, this.maxPending);
    if (place === "too_many_pending") return refusal("too_many_pending", TOO_MANY_RETRY_MS);
    if (place === "issue") return this.issueWithToken(issuer, request, csr.keyFingerprint);
    const queued = await this.queue(request, address, csr.keyFingerprint, token);
    if (queued.kind === "none") return refusal("too_many_pending", TOO_MANY_RETRY_MS);
    this.o.log.info({ requestId: queued.request.requestId, requestedId: request.requestedId, hostname: request.hostname, address, tokenId: token?.id ?? null }, "join request waiting for approval");
    return this.answer(issuer, csr.keyFingerprint, queued, request.waitMs, signal);
  }

  /** An approve=auto token: its use is counted in the file (under the lock, checked again there) before issuing. */
  private async issueWithToken(issuer: Issuer, request: JoinRequest, keyFingerprint: string): Promise<JoinAnswer> {
    const presented = request.token!;
    const taken = await updateJoinFile(this.o.tokensPath, (f) => {
      const checked = checkToken(f.tokens, presented, this.now());
      if (!checked.ok) return { ok: false as const, code: checked.code };
      checked.record.used++;
      return { ok: true as const, token: { ...checked.record } };
    });
    if (!taken.ok) return refusal(taken.code);
    const { token } = taken;
    try {
      const cert = await issuer.issue({ csrPem: request.csr, id: request.requestedId, labels: token.labels, lifetimeMs: this.o.lifetimeMs, source: `join token ${token.id}` });
      if (cert.keyFingerprint !== keyFingerprint) throw new FleetError("E_JOIN", "the issued certificate does not carry the request's key");
      if (token.replace) await this.revokeOthers(issuer, request.requestedId, cert.serialNumber);
      return { status: "issued", id: request.requestedId, certificate: cert.certPem, ca: issuer.caPem, notAfter: cert.notAfter.toISOString() };
    } catch (err) {
      // Not issued: the use goes back.
      await updateJoinFile(this.o.tokensPath, (f) => {
        const t = f.tokens.find((x) => x.id === token.id);
        if (t && t.used > 0) t.used--;
      });
      if (isFleetError(err, "E_JOIN")) return refusal("bad_csr");
      throw err;
    }
  }

  /** Adds a pending request for the key, unless one appeared meanwhile or the list is full (then: none). */
  private async queue(request: JoinRequest, address: string | null, keyFingerprint: string, token: TokenRecord | null): Promise<Standing> {
    const standing = await updateJoinFile(this.o.tokensPath, (f): Standing => {
      const now = this.now();
      dropForgotten(f, now);
      const existing = standingOf(f, keyFingerprint, now);
      if (existing.kind !== "none") return existing;
      if (placeNew(f, token, now, this.maxPending) !== "queue") return { kind: "none" };
      const record = newRequestRecord({
        requestId: uniqueRequestId(f),
        requestedId: request.requestedId,
        hostname: request.hostname,
        address,
        keyFingerprint,
        csr: request.csr,
        token,
        now,
      });
      f.requests.push(record);
      return { kind: "pending", request: { ...record }, until: Date.parse(record.expiresAt) };
    });
    await this.refresh();
    return standing;
  }

  /**
   * Answers a key whose request exists: pending ones are held until decided, up to `waitMs`; an approved one is
   * issued first if it is not yet.
   */
  private async answer(issuer: Issuer, keyFingerprint: string, standing: Standing, waitMs: number, signal: AbortSignal): Promise<JoinAnswer> {
    const deadline = performance.now() + waitMs;
    for (let waited = false; ; ) {
      if (standing.kind === "none") return refusal("request_expired");
      const now = this.now();
      if (standing.kind === "approved" && !standing.request.certificate) {
        const issued = await this.ensureIssued(issuer, standing.request);
        if (!issued.ok && issued.transient) throw new Error(`the approved request's certificate was not issued: ${issued.message}`);
        if (!issued.ok) return refusal(issued.code, undefined, issued.message);
        standing = { kind: "approved", request: issued.request, until: standing.until };
        continue;
      }
      const left = deadline - performance.now();
      if (standing.kind === "pending" && !waited && left > 0 && !signal.aborted) {
        await this.waitFor(standing.request.requestId, Math.min(left, standing.until - now.getTime()), signal);
        waited = true;
        standing = standingOf(this.file, keyFingerprint, this.now());
        continue;
      }
      return answerFor(standing, { caPem: issuer.caPem, now, waited: waited || waitMs > 0 })!;
    }
  }

  private waitFor(requestId: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(requestId);
      if (!set) this.waiters.set(requestId, (set = new Set()));
      const waiters = set;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        waiters.delete(done);
        if (waiters.size === 0 && this.waiters.get(requestId) === waiters) this.waiters.delete(requestId);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener("abort", done, { once: true });
      waiters.add(done);
    });
  }

  private wake(requestId: string): void {
    for (const wake of this.waiters.get(requestId) ?? []) wake();
  }

  private async decide(requestId: string, decision: "approved" | "denied", by: Approver): Promise<RequestRecord> {
    const byText = approverText(by);
    // Before the write: the watcher may read the decided file before the write returns here.
    this.decidedHere.add(requestId);
    let record: RequestRecord;
    try {
      record = await updateJoinFile(this.o.tokensPath, (f) => ({
        ...decideRequest(f, { requestId, decision, by: byText, now: this.now(), path: this.o.tokensPath }),
      }));
    } catch (err) {
      this.decidedHere.delete(requestId);
      throw err;
    }
    this.o.log.info({ requestId, workerId: record.requestedId, decision, by: byText, client: by.name, clientVersion: by.version, operator: by.operator }, "join decided");
    await this.refresh();
    return record;
  }

  /**
   * Issues the certificate of an approved request and records it in the file (with the token's use counted), once
   * however many ask. The id is checked again: another key may have taken it since the request came in.
   */
  private ensureIssued(issuer: Issuer, record: RequestRecord): Promise<Issued> {
    const known = this.issuing.get(record.requestId);
    if (known) return known;
    const failed = this.failed.get(record.requestId);
    if (failed) return Promise.resolve({ ok: false, ...failed });
    const work = this.issue(issuer, record).catch((err): Issued => {
      this.o.log.error({ requestId: record.requestId, workerId: record.requestedId, err: errorMessage(err) }, "approved join request not issued");
      if (isFleetError(err, "E_JOIN")) return { ok: false, code: "bad_csr", message: JOIN_REFUSAL_TEXT.bad_csr };
      return { ok: false, code: "bad_csr", message: errorMessage(err), transient: true };
    });
    this.issuing.set(record.requestId, work);
    void work.then((result) => {
      this.issuing.delete(record.requestId);
      if (!result.ok && !result.transient) this.failed.set(record.requestId, { code: result.code, message: result.message });
      this.wake(record.requestId);
    });
    return work;
  }

  private async issue(issuer: Issuer, record: RequestRecord): Promise<Issued> {
    const token = record.tokenId ? this.file.tokens.find((t) => t.id === record.tokenId) : undefined;
    const now = this.now();
    if (!token?.replace && (await issuer.heldByOther(record.requestedId, record.keyFingerprint, now))) {
      this.o.log.warn({ requestId: record.requestId, workerId: record.requestedId }, "approved join request not issued: its id is held by another key's certificate");
      return { ok: false, code: "id_taken", message: JOIN_REFUSAL_TEXT.id_taken };
    }
    const cert = await issuer.issue({
      csrPem: record.csr,
      id: record.requestedId,
      labels: record.labels,
      lifetimeMs: this.o.lifetimeMs,
      source: `join request ${record.requestId}${record.tokenId ? ` (token ${record.tokenId})` : ""}`,
    });
    const stored = await updateJoinFile(this.o.tokensPath, (f) => {
      const r = f.requests.find((x) => x.requestId === record.requestId);
      if (!r) return null;
      r.certificate = cert.certPem;
      r.serialNumber = cert.serialNumber.toLowerCase();
      r.notAfter = cert.notAfter.toISOString();
      // A manual token's use counts when a host it brought is approved.
      const t = r.tokenId ? f.tokens.find((x) => x.id === r.tokenId) : undefined;
      if (t) t.used++;
      return { ...r };
    });
    if (!stored) throw new Error(`join request ${record.requestId} left the join file while it was being issued`);
    await this.refresh();
    if (token?.replace) await this.revokeOthers(issuer, record.requestedId, stored.serialNumber!);
    return { ok: true, request: stored };
  }

  private async revokeOthers(issuer: Issuer, id: string, keepSerial: string): Promise<void> {
    const serials = await issuer.revokeOthers(id, keepSerial);
    if (serials.length === 0) return;
    this.o.log.info({ worker: id, revoked: serials, kept: keepSerial }, "replaced: the id's other certificates are revoked");
    this.o.onRevoked?.(serials);
  }

  /** Reads the file again (reads queue behind each other) and acts on what changed in it. */
  private refresh(): Promise<void> {
    this.chain = this.chain.then(async () => {
      let next: JoinFile;
      try {
        next = await readJoinFile(this.o.tokensPath);
      } catch (err) {
        this.o.log.error({ tokens: this.o.tokensPath, err: errorMessage(err) }, "join file not read; keeping the last one read");
        return;
      }
      const before = this.file;
      this.file = next;
      this.changed(before, next);
    });
    return this.chain;
  }

  /** Logs and answers the decisions made elsewhere (the command line), and issues what was approved there. */
  private changed(before: JoinFile, after: JoinFile): void {
    const issuer = this.o.issuer;
    if (!issuer) return;
    for (const r of decisionsBetween(before, after)) {
      if (!this.decidedHere.delete(r.requestId)) {
        this.o.log.info({ requestId: r.requestId, workerId: r.requestedId, decision: r.status, by: r.decidedBy ?? "cli" }, "join decided");
      }
      if (r.status === "denied") this.wake(r.requestId);
    }
    for (const r of awaitingIssue(after, this.now())) void this.ensureIssued(issuer, r);
  }

  private async prune(): Promise<void> {
    const known = new Set(this.file.requests.map((r) => r.requestId));
    for (const id of this.failed.keys()) if (!known.has(id)) this.failed.delete(id);
    if (forgettable(this.file, this.now()).length === 0) return;
    try {
      await updateJoinFile(this.o.tokensPath, (f) => void dropForgotten(f, this.now()));
      await this.refresh();
    } catch (err) {
      this.o.log.warn({ tokens: this.o.tokensPath, err: errorMessage(err) }, "old join requests not dropped from the join file");
    }
  }

  private requireIssuer(requestId: string): Issuer {
    if (!this.o.issuer) throw new FleetError("E_UNKNOWN_REQUEST", `no join request ${requestId}: this manager does not enroll hosts (it has no CA key)`);
    return this.o.issuer;
  }
}

function uniqueRequestId(f: JoinFile): string {
  for (;;) {
    const id = newRequestId();
    if (!f.requests.some((r) => r.requestId === id)) return id;
  }
}
