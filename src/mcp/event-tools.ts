import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Manager } from "../manager/manager.js";
import { decodeEventCursor, eventCursorBefore } from "./event-pages.js";
import { EventsOutput } from "./schemas.js";
import { cursorArg, limitArg, pageAnswer, readOnly, toolError, workerId } from "./tool-kit.js";
import { eventOut, parseSince, unknownWorkerMessage } from "./views.js";

const EVENTS_DEFAULT_LIMIT = 50;
/** Action outcomes shown beside the health events: their own bound, so they never crowd the transitions out. */
export const ACTION_EVENTS_SHOWN = 20;

export function registerWorkerEvents(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "get_worker_events",
    {
      title: "Health transitions",
      description:
        "Health transitions (joined, degraded, unhealthy, recovered, offline) with time and reasons, as the manager " +
        "observed them: the first page holds the newest, oldest first within it; nextCursor leads to older ones. " +
        "Give the same filters with a cursor. Apart, in `actions`: the newest " +
        `${ACTION_EVENTS_SHOWN} action outcomes (get_job has their detail).`,
      inputSchema: {
        worker_id: workerId.optional(),
        since: z.string().max(64).optional().describe('ISO time, or a duration back from now: "15m", "2h", "1d"'),
        limit: limitArg(`events per page (default ${EVENTS_DEFAULT_LIMIT})`),
        cursor: cursorArg,
      },
      outputSchema: EventsOutput.shape,
      annotations: readOnly,
    },
    async ({ worker_id, since, limit, cursor }) => {
      if (worker_id !== undefined && !registry.get(worker_id)) {
        return toolError(unknownWorkerMessage(worker_id, registry.list().map((v) => v.id).sort()));
      }
      let from: number | undefined;
      if (since !== undefined) {
        const t = parseSince(since, Date.now());
        if (typeof t === "string") return toolError(t);
        from = t;
      }
      const before = cursor === undefined ? undefined : decodeEventCursor(cursor);
      if (before === null) return toolError(`cursor "${cursor}" is not one this server issued; omit it to start from the newest events`);
      const actions = manager.jobs
        .actionEvents(worker_id, ACTION_EVENTS_SHOWN)
        .filter((a) => from === undefined || Date.parse(a.at) >= from)
        .map((a) => ({ at: a.at, worker: a.worker, jobId: a.jobId, action: a.action, status: a.status }));
      const paged = registry.eventPage({ worker: worker_id, since: from, beforeSeq: before, limit: limit ?? EVENTS_DEFAULT_LIMIT });
      // Newest first, so that the budget, if it cuts, cuts the oldest; the page itself reads oldest first.
      const rows = paged.events.map((e) => ({ e, out: eventOut(e) })).reverse();
      return pageAnswer("get_worker_events", EventsOutput, {
        rows,
        more: paged.hasMore,
        shown: (r) => r.out,
        build: (kept, nextCursor) => ({ events: kept.map((r) => r.out).reverse(), actions, nextCursor }),
        cursorAfter: (r) => eventCursorBefore(r.e),
      });
    },
  );
}
