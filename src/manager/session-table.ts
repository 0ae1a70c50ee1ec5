import { CloseCode } from "../protocol/close-codes.js";
import type { WorkerSession } from "./session.js";

/**
 * Every live worker session, the current one per worker id, and how many from each address are still waiting
 * for their `hello` (the admission's per-address cap reads that count).
 */
export class SessionTable {
  private readonly all = new Set<WorkerSession>();
  private readonly byWorker = new Map<string, WorkerSession>();
  private readonly awaitingHello = new Set<WorkerSession>();
  private readonly pendingByAddress = new Map<string, number>();

  get size(): number {
    return this.all.size;
  }

  /** Workers with a session past `hello`. */
  get connected(): number {
    return this.byWorker.size;
  }

  [Symbol.iterator](): IterableIterator<WorkerSession> {
    return this.all.values();
  }

  current(workerId: string): WorkerSession | undefined {
    return this.byWorker.get(workerId);
  }

  pendingFrom(address: string | null): number {
    return this.pendingByAddress.get(address ?? "") ?? 0;
  }

  /** A new session, waiting for its `hello`. */
  add(s: WorkerSession): void {
    this.all.add(s);
    this.awaitingHello.add(s);
    const key = s.address ?? "";
    this.pendingByAddress.set(key, (this.pendingByAddress.get(key) ?? 0) + 1);
  }

  /** Its `hello` was accepted: it becomes the worker's current session and replaces the previous one. */
  accepted(s: WorkerSession): void {
    this.helloDone(s);
    const previous = this.byWorker.get(s.workerId);
    this.byWorker.set(s.workerId, s);
    previous?.close(CloseCode.REPLACED, `new session from ${s.address ?? "unknown address"}`);
  }

  ended(s: WorkerSession): void {
    this.helloDone(s);
    this.all.delete(s);
    if (this.byWorker.get(s.workerId) === s) this.byWorker.delete(s.workerId);
  }

  private helloDone(s: WorkerSession): void {
    if (!this.awaitingHello.delete(s)) return;
    const key = s.address ?? "";
    const n = (this.pendingByAddress.get(key) ?? 1) - 1;
    if (n > 0) this.pendingByAddress.set(key, n);
    else this.pendingByAddress.delete(key);
  }
}
