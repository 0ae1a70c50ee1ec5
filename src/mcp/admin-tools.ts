import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { Manager } from "../manager/manager.js";

/** Tools that change what the manager knows (not the workers): none is read-only. */

export const ForgetWorkerOutput = z.object({
  forgotten: z.string().describe("the worker id removed from the registry"),
  lastState: z.enum(HEALTH_STATES).describe("its state when it was forgotten"),
  seq: z.number().int().describe("the sequence number of the event that records the removal"),
  at: z.string().describe("ISO time of the removal"),
});

const workerId = z
  .string()
  .min(1, "worker_id must not be empty")
  .max(63, "worker_id is at most 63 characters")
  .describe("the id of a worker that is not connected (list_workers)");

function refusal(code: string, message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: `${code}: ${message}` }] };
}

export function registerAdminTools(server: McpServer, manager: Manager): void {
  const { registry } = manager;
  server.registerTool(
    "forget_worker",
    {
      title: "Forget a worker",
      description:
        "Removes a retired worker from the registry, with its own event history; the removal is recorded as an " +
        "event (reason forgotten). Only a worker that is not connected can be forgotten: stop its agent or revoke " +
        "its certificate first. A host that connects again later with a valid certificate is known again, as new. " +
        "Workers offline after a goodbye or a revocation are forgotten by themselves after a while (7 days by default).",
      inputSchema: { worker_id: workerId },
      outputSchema: ForgetWorkerOutput.shape,
      annotations: { title: "Forget a worker", readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    async ({ worker_id }) => {
      const outcome = registry.forget(worker_id);
      if ("refused" in outcome) {
        return outcome.refused === "connected"
          ? refusal("E_CONNECTED", `worker ${worker_id} is connected; stop its agent or revoke its certificate first, then forget it`)
          : refusal("E_UNKNOWN_WORKER", `no worker ${worker_id} is known (already forgotten, or never connected)`);
      }
      const e = outcome.forgotten;
      const structured = ForgetWorkerOutput.parse({ forgotten: e.worker, lastState: e.from ?? "offline", seq: e.seq, at: new Date(e.at).toISOString() });
      return { structuredContent: structured, content: [{ type: "text", text: JSON.stringify(structured) }] };
    },
  );
}
