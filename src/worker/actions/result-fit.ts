import type { RunResult } from "../../protocol/actions.js";

/** The final answer's encoded size at most: one frame (64 KiB) less the response envelope and some room. */
export const MAX_RESULT_BYTES = 60 * 1024;

const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,31}$/;

const encodedSize = (r: RunResult) => Buffer.byteLength(JSON.stringify(r), "utf8");

/**
 * The final RunResult made to fit one frame: `structured` goes first (structuredOmitted says so), then the tails
 * are shortened from their beginnings, keeping the ends, which say how the program ended. An error that is not a
 * code becomes ACTION_FAILED, so the manager never refuses the whole answer over it.
 */
export function fitResult(result: RunResult): RunResult {
  let r = result.error !== undefined && !ERROR_CODE.test(result.error) ? { ...result, error: "ACTION_FAILED" } : result;
  if (encodedSize(r) < MAX_RESULT_BYTES) return r;
  if (r.structured !== undefined) {
    const { structured: _dropped, ...rest } = r;
    r = { ...rest, structuredOmitted: true };
  }
  // Control characters are escaped six-fold; each round halves both tails, so a few rounds always suffice.
  for (let round = 0; round < 16 && encodedSize(r) >= MAX_RESULT_BYTES; round++) {
    r = { ...r, stdout: { ...r.stdout, tail: shorten(r.stdout.tail) }, stderr: { ...r.stderr, tail: shorten(r.stderr.tail) } };
  }
  return r;
}

function shorten(tail: string): string {
  let cut = Math.ceil(tail.length / 2);
  // Do not begin with the second half of a surrogate pair.
  const code = tail.charCodeAt(cut);
  if (code >= 0xdc00 && code <= 0xdfff) cut++;
  return tail.slice(cut);
}
