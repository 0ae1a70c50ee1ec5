import type { HealthEvent } from "../core/registry.js";

/** The cursor of the page of events older than `e`. */
export function eventCursorBefore(e: HealthEvent): string {
  return Buffer.from(`e1:${e.seq}`).toString("base64url");
}

/** The sequence number a cursor from `eventCursorBefore` reads below, or null if it is not one of ours. */
export function decodeEventCursor(cursor: string): number | null {
  const m = /^e1:(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  return m ? Number(m[1]) : null;
}
