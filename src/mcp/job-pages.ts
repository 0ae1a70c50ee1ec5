import type { KeptOutput } from "../jobs/api.js";

// Cursors of get_job's three kinds of page (a job's invocations, the recent jobs, one invocation's kept output),
// and the cut of kept output into pages that fit the answer budget. Each kind has its own prefix, so a cursor
// from one kind of page is refused by another.

const encode = (text: string) => Buffer.from(text).toString("base64url");
const decode = (cursor: string) => Buffer.from(cursor, "base64url").toString("utf8");

/** The page of a job's invocations that starts at `index`. */
export const invocationCursor = (index: number) => encode(`i1:${index}`);
export function decodeInvocationCursor(cursor: string): number | null {
  const m = /^i1:(\d{1,9})$/.exec(decode(cursor));
  return m ? Number(m[1]) : null;
}

/** The page of recent jobs after the job `id`. */
export const recentCursor = (id: string) => encode(`r1:${id}`);
export function decodeRecentCursor(cursor: string): string | null {
  const m = /^r1:(.{1,80})$/.exec(decode(cursor));
  return m ? m[1]! : null;
}

export interface OutputOffsets {
  stdout: number;
  stderr: number;
}

/** The page of kept output that starts at these offsets (in UTF-16 units) into stdout and stderr. */
export const outputCursor = (o: OutputOffsets) => encode(`o1:${o.stdout}:${o.stderr}`);
export function decodeOutputCursor(cursor: string): OutputOffsets | null {
  const m = /^o1:(\d{1,9}):(\d{1,9})$/.exec(decode(cursor));
  return m ? { stdout: Number(m[1]), stderr: Number(m[2]) } : null;
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/**
 * Where a run of `s` from `start` ends if its JSON (without the quotes) is to stay within `budget` characters.
 * Counted as JSON.stringify escapes: quote and backslash 2, \b \t \n \f \r 2, other controls and lone surrogates
 * 6; a surrogate pair is never split.
 */
export function fitJson(s: string, start: number, budget: number): number {
  let used = 0;
  let i = start;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    let cost = 1;
    let width = 1;
    if (c === 0x22 || c === 0x5c) cost = 2;
    else if (c < 0x20) cost = c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
    else if (isHigh(c) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) [cost, width] = [2, 2];
    else if (isHigh(c) || isLow(c)) cost = 6;
    if (used + cost > budget) break;
    used += cost;
    i += width;
  }
  return i;
}

/**
 * One page of an invocation's kept output from `from`, within `budget` JSON characters over both streams: stdout
 * first, then stderr; `next` is null once both are through.
 */
export function outputPage(out: KeptOutput, from: OutputOffsets, budget: number): { stdout: string; stderr: string; next: OutputOffsets | null } {
  const outStart = Math.min(from.stdout, out.stdout.length);
  const outEnd = fitJson(out.stdout, outStart, budget);
  const stdout = out.stdout.slice(outStart, outEnd);
  const errStart = Math.min(from.stderr, out.stderr.length);
  const errEnd = outEnd < out.stdout.length ? errStart : fitJson(out.stderr, errStart, budget - (JSON.stringify(stdout).length - 2));
  const stderr = out.stderr.slice(errStart, errEnd);
  const done = outEnd >= out.stdout.length && errEnd >= out.stderr.length;
  return { stdout, stderr, next: done ? null : { stdout: outEnd, stderr: errEnd } };
}
