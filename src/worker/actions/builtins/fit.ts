import { DIAGNOSTIC_RESULT_MAX_BYTES, encodedBytes } from "../../../protocol/diagnostics.js";

/**
 * The result `build` makes of as many of `items` (most wanted first) as fit DIAGNOSTIC_RESULT_MAX_BYTES, told how
 * many it leaves out. Lists are cut here rather than by a smaller count, so that ordinary (ASCII) results keep
 * every item and only text of many multi-byte characters costs items.
 */
export function fitList<T, R extends Record<string, unknown>>(
  items: readonly T[],
  build: (kept: readonly T[], omitted: number) => R,
  maxBytes: number = DIAGNOSTIC_RESULT_MAX_BYTES,
): R {
  const whole = build(items, 0);
  if (encodedBytes(whole) <= maxBytes) return whole;
  let room = maxBytes - encodedBytes(build([], items.length));
  let kept = 0;
  for (; kept < items.length; kept++) {
    const size = encodedBytes(items[kept]) + 1;
    if (size > room) break;
    room -= size;
  }
  for (;;) {
    const result = build(items.slice(0, kept), items.length - kept);
    if (kept === 0 || encodedBytes(result) <= maxBytes) return result;
    kept--;
  }
}
