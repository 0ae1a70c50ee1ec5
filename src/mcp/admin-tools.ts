import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { Manager } from "../manager/manager.js";
import { whole } from "./schemas.js";
import { answer, toolError, workerId } from "./tool-kit.js";

/** Tools that change what the manager knows (not the workers): none is read-only. */

export const ForgetWorkerOutput = z.object({
  forgotten: z.string().describe("the worker id removed from the registry"),
  lastState: z.enum(HEALTH_STATES).describe("its state when it was forgotten"),
  seq: whole.describe("the sequence number of the event that records the removal"),
  at: z.string().describe("ISO time of the removal"),
});

export function registerAdminTools(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "forget_worker",
    {
      title: "Forget a worker",
      description:
        "Removes a retired worker and its event history from the registry (the removal is an event, reason " +
        "forgotten). Only a worker not connected: stop its agent or revoke its certificate first. One that connects " +
        "again with a valid certificate is known again, as new. Workers offline after a goodbye or a revocation are " +
        "forgotten on their own (after 7 days by default).",
      inputSchema: { worker_id: workerId.describe("the id of a worker that is not connected (list_workers)") },
      outputSchema: ForgetWorkerOutput.shape,
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ worker_id }) => {
      const outcome = registry.forget(worker_id);
      if ("refused" in outcome) {
        return outcome.refused === "connected"
          ? toolError(`E_CONNECTED: worker ${worker_id} is connected; stop its agent or revoke its certificate first, then forget it`)
          : toolError(`E_UNKNOWN_WORKER: no worker ${worker_id} is known (already forgotten, or never connected)`);
      }
      const e = outcome.forgotten;
      return answer("forget_worker", ForgetWorkerOutput, { forgotten: e.worker, lastState: e.from ?? "offline", seq: e.seq, at: new Date(e.at).toISOString() });
    },
  );
}
