import type { Principal } from "../mcp/principal.js";

export interface McpSessionLimits {
  /** MCP sessions open at once; one more is refused until one closes. */
  maxSessions: number;
  /** A session with no request or stream open for this long is closed. */
  idleTimeoutMs: number;
}

interface Entry<T> {
  value: T;
  principal: Principal;
  /** Requests and streams of this session open now: a client holding its notification stream is not idle. */
  open: number;
  lastActiveAt: number;
}

/**
 * The MCP sessions over HTTP, by session id: who owns each, whether it is in use, and room for new ones. Pure
 * bookkeeping on an injected clock (the endpoint does the closing), so the limits are tested without a network.
 *
 * A session being initialized holds a reservation until it has an id (or fails), so many initializations at once
 * cannot overshoot the cap.
 */
export class McpSessionTable<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private starting = 0;

  constructor(
    readonly limits: McpSessionLimits,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Room for one more session: true and held until `release`, or false when the cap is reached. */
  reserve(): boolean {
    if (this.entries.size + this.starting >= this.limits.maxSessions) return false;
    this.starting++;
    return true;
  }

  release(): void {
    this.starting = Math.max(0, this.starting - 1);
  }

  add(id: string, value: T, principal: Principal): void {
    this.entries.set(id, { value, principal, open: 0, lastActiveAt: this.now() });
  }

  /** The session `id` if it belongs to the certificate with `fingerprint256`: a session id alone is no credential. */
  get(id: string, fingerprint256: string): T | undefined {
    const e = this.entries.get(id);
    return e && e.principal.fingerprint256 === fingerprint256 ? e.value : undefined;
  }

  /** A request or stream of session `id` opened. */
  begin(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.open++;
    e.lastActiveAt = this.now();
  }

  /** A request or stream of session `id` ended. */
  end(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    e.open = Math.max(0, e.open - 1);
    e.lastActiveAt = this.now();
  }

  remove(id: string): T | undefined {
    const e = this.entries.get(id);
    this.entries.delete(id);
    return e?.value;
  }

  /** Sessions with nothing open for the idle timeout, and how long each was idle. */
  idle(): Array<{ id: string; value: T; principal: Principal; idleMs: number }> {
    const now = this.now();
    const found = [];
    for (const [id, e] of this.entries) {
      const idleMs = now - e.lastActiveAt;
      if (e.open === 0 && idleMs >= this.limits.idleTimeoutMs) found.push({ id, value: e.value, principal: e.principal, idleMs });
    }
    return found;
  }

  /** Every session whose principal `pred` picks (a revoked certificate's, say). */
  matching(pred: (principal: Principal) => boolean): Array<{ id: string; value: T }> {
    return [...this.entries].filter(([, e]) => pred(e.principal)).map(([id, e]) => ({ id, value: e.value }));
  }
}
