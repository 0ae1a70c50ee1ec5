import { createHash, randomBytes } from "node:crypto";
import type { Plan } from "../jobs/api.js";

/*
 * Confirmation tokens for destructive calls, for clients that cannot be asked (no elicitation): the first call
 * returns what would be done and a token, the second call does it only if it names the same thing. A token is
 * bound to a digest of exactly what it confirms: for an action's plan, the action, its arguments (canonical JSON:
 * key order does not matter), the sorted target ids and the definitions the targets offer, so a changed catalogue
 * or target set needs a new confirmation; for a join decision, the decision and the request id. The two kinds of
 * binding never coincide, so one store serves both. Pure: the clock is injected.
 */

/** How long a token is valid. */
export const CONFIRMATION_TTL_MS = 120_000;
/** How long a used or expired token is remembered, so a refusal can say why. */
const REMEMBER_MS = 600_000;
/** Tokens remembered at most; the oldest are forgotten first. */
const MAX_TOKENS = 1000;

export type Refusal = "unknown" | "reused" | "expired" | "mismatched";

export interface Issued {
  token: string;
  expiresAt: number;
}

interface Entry {
  binding: string;
  expiresAt: number;
  used: boolean;
}

/** JSON with every object's keys sorted, so equal arguments give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

const digest = (value: unknown) => createHash("sha256").update(canonicalJson(value)).digest("hex");

/** What a plan's token is bound to: its action, arguments, targets and definitions, and nothing else. */
export function planBinding(plan: Pick<Plan, "action" | "arguments" | "targets" | "definitionHashes">): string {
  return digest({
    action: plan.action,
    arguments: plan.arguments,
    targets: [...plan.targets].sort(),
    definitions: [...plan.definitionHashes].sort(),
  });
}

export type JoinDecision = "approve" | "deny";

/** What a join decision's token is bound to: the decision and the request, so it confirms neither the other decision nor another host. */
export function joinBinding(decision: JoinDecision, requestId: string): string {
  return digest({ join: decision, request: requestId });
}

/** Why a token for something else, or no longer valid, is refused (the caller says what "something else" is). */
export const STALE_TOKEN = {
  reused: "this token was used already",
  expired: `this token has expired (tokens are valid ${CONFIRMATION_TTL_MS / 60_000} minutes)`,
} as const;

export class Confirmations {
  private readonly tokens = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly random: () => string;

  constructor(opts: { now?: () => number; random?: () => string } = {}) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? (() => randomBytes(16).toString("base64url"));
  }

  /** A new token for `binding` (planBinding or joinBinding). */
  issue(binding: string): Issued {
    this.prune();
    const token = this.random();
    const expiresAt = this.now() + CONFIRMATION_TTL_MS;
    this.tokens.set(token, { binding, expiresAt, used: false });
    while (this.tokens.size > MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    return { token, expiresAt };
  }

  /**
   * Uses `token` for `binding`: null if it may go ahead, else why not. A token for something else stays valid
   * for its own, so a mistaken call does not cost the confirmation.
   */
  redeem(token: string, binding: string): Refusal | null {
    this.prune();
    const entry = this.tokens.get(token);
    if (!entry) return "unknown";
    if (entry.used) return "reused";
    if (this.now() >= entry.expiresAt) return "expired";
    if (entry.binding !== binding) return "mismatched";
    entry.used = true;
    return null;
  }

  private prune(): void {
    const now = this.now();
    for (const [token, entry] of this.tokens) {
      if (now >= entry.expiresAt + REMEMBER_MS) this.tokens.delete(token);
    }
  }
}
