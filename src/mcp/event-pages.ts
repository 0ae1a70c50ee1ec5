import type { HealthEvent, Registry } from "../core/registry.js";

/**
 * The health history as the MCP layer reads it, oldest first: the one place it calls `registry.events`, so a
 * change in how the registry keeps its history is met here.
 */
export function readHistory(registry: Registry, filter: { worker?: string; limit?: number } = {}): HealthEvent[] {
  return registry.events(filter);
}

/**
 * One page of `events` (oldest first): the newest `limit` of those older than the cursor, oldest first, and
 * whether older ones remain. The first page is the newest; each cursor leads further back. The cursor names the
 * sequence number to read below, so events recorded between two calls do not shift the pages.
 */
export function eventPage(
  events: HealthEvent[],
  limit: number,
  cursor: string | undefined,
): { items: HealthEvent[]; more: boolean } | { error: string } {
  let end = events.length;
  if (cursor !== undefined) {
    const before = decodeEventCursor(cursor);
    if (before === null) return { error: `cursor "${cursor}" is not one this server issued; omit it to start from the newest events` };
    end = events.findIndex((e) => e.seq >= before);
    if (end < 0) end = events.length;
  }
  const start = Math.max(0, end - limit);
  return { items: events.slice(start, end), more: start > 0 };
}

/** The cursor of the page of events older than `e`. */
export function eventCursorBefore(e: HealthEvent): string {
  return Buffer.from(`e1:${e.seq}`).toString("base64url");
}

function decodeEventCursor(cursor: string): number | null {
  const m = /^e1:(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  return m ? Number(m[1]) : null;
}
