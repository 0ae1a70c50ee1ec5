import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Manager } from "../manager/manager.js";
import { eventCursorBefore, eventPage, readHistory } from "./event-pages.js";
import { EventsOutput } from "./schemas.js";
import { cursorArg, limitArg, pageAnswer, readOnly, toolError, workerId } from "./tool-kit.js";
import { eventOut, parseSince, unknownWorkerMessage } from "./views.js";

const EVENTS_DEFAULT_LIMIT = 50;

export function registerWorkerEvents(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "get_worker_events",
    {
      title: "Health transitions",
      description:
        "Health transitions (joined, degraded, unhealthy, recovered, offline) with their time and reasons, as the " +
        "manager observed them. The first page holds the newest events, oldest first within it; nextCursor leads " +
        "to older ones. Filter by worker and by time: since is an ISO time or a duration back from now such as 15m " +
        "or 2h; give the same filters with a cursor.",
      inputSchema: {
        worker_id: workerId.optional(),
        since: z.string().max(64).optional().describe('ISO time, or a duration back from now: "15m", "2h", "1d"'),
        limit: limitArg(`events per page (default ${EVENTS_DEFAULT_LIMIT})`),
        cursor: cursorArg,
      },
      outputSchema: EventsOutput.shape,
      annotations: { title: "Health transitions", ...readOnly },
    },
    async ({ worker_id, since, limit, cursor }) => {
      if (worker_id !== undefined && !registry.get(worker_id)) {
        return toolError(unknownWorkerMessage(worker_id, registry.list().map((v) => v.id).sort()));
      }
      let events = readHistory(registry, { worker: worker_id });
      if (since !== undefined) {
        const from = parseSince(since, Date.now());
        if (typeof from === "string") return toolError(from);
        events = events.filter((e) => e.at >= from);
      }
      const paged = eventPage(events, limit ?? EVENTS_DEFAULT_LIMIT, cursor);
      if ("error" in paged) return toolError(paged.error);
      // Newest first, so that the budget, if it cuts, cuts the oldest; the page itself reads oldest first.
      const rows = paged.items.map((e) => ({ e, out: eventOut(e) })).reverse();
      return pageAnswer("get_worker_events", EventsOutput, {
        rows,
        more: paged.more,
        shown: (r) => r.out,
        build: (kept, nextCursor) => ({ total: events.length, events: kept.map((r) => r.out).reverse(), nextCursor }),
        cursorAfter: (r) => eventCursorBefore(r.e),
      });
    },
  );
}
