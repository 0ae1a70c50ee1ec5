import { createHash, randomBytes } from "node:crypto";
import type { Plan } from "../jobs/api.js";

/*
 * Confirmation tokens for destructive plans, for clients that cannot be asked (no elicitation): the first call
 * returns the plan and a token, the second call runs it only if it names the same plan. A token is bound to the
 * action, its arguments (canonical JSON: key order does not matter), the sorted target ids and the definitions
 * the targets offer, so a changed catalogue or target set needs a new confirmation. Pure: the clock is injected.
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

/** What a token is bound to: the plan's action, arguments, targets and definitions, and nothing else. */
export function planBinding(plan: Pick<Plan, "action" | "arguments" | "targets" | "definitionHashes">): string {
  const text = canonicalJson({
    action: plan.action,
    arguments: plan.arguments,
    targets: [...plan.targets].sort(),
    definitions: [...plan.definitionHashes].sort(),
  });
  return createHash("sha256").update(text).digest("hex");
}

export class Confirmations {
  private readonly tokens = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly random: () => string;

  constructor(opts: { now?: () => number; random?: () => string } = {}) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? (() => randomBytes(16).toString("base64url"));
  }

  issue(plan: Plan): Issued {
    this.prune();
    const token = this.random();
    const expiresAt = this.now() + CONFIRMATION_TTL_MS;
    this.tokens.set(token, { binding: planBinding(plan), expiresAt, used: false });
    while (this.tokens.size > MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    return { token, expiresAt };
  }

  /**
   * Uses `token` for `plan`: null if it may run, else why not. A token for another plan stays valid for its own,
   * so a mistaken call does not cost the confirmation.
   */
  redeem(token: string, plan: Plan): Refusal | null {
    this.prune();
    const entry = this.tokens.get(token);
    if (!entry) return "unknown";
    if (entry.used) return "reused";
    if (this.now() >= entry.expiresAt) return "expired";
    if (entry.binding !== planBinding(plan)) return "mismatched";
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
