import { z } from "zod";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Parses `500ms`, `2s`, `1.5s`, `1m`, `1h`, `7d` into milliseconds. A bare number is refused: units are not guessed. */
export function parseDuration(text: string): number {
  const match = PATTERN.exec(text.trim());
  if (!match) {
    const hint = /^\d+(\.\d+)?$/.test(text.trim()) ? ` (add a unit, e.g. ${text.trim()}s)` : "";
    throw new Error(`"${text}" is not a duration like 500ms, 2s, 1m${hint}`);
  }
  return Math.round(Number(match[1]) * (UNITS[match[2]!] ?? 1));
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(1)}m`;
  if (ms < 2 * 86_400_000) return `${+(ms / 3_600_000).toFixed(1)}h`;
  return `${+(ms / 86_400_000).toFixed(1)}d`;
}

/** A zod schema for a duration flag: accepts the text form (flags, environment) or milliseconds (code). */
export function duration(opts: { min?: number; max?: number } = {}) {
  return z
    .union([z.number(), z.string()])
    .transform((value, ctx) => {
      if (typeof value === "number") return value;
      try {
        return parseDuration(value);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message });
        return z.NEVER;
      }
    })
    .pipe(
      z
        .number()
        .min(opts.min ?? 0, `must be at least ${formatDuration(opts.min ?? 0)}`)
        .max(opts.max ?? Number.MAX_SAFE_INTEGER, `must be at most ${formatDuration(opts.max ?? 0)}`),
    );
}
