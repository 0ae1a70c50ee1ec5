import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Manager } from "../manager/manager.js";
import { registerListActions, registerRunAction } from "./action-tools.js";
import { Confirmations } from "./confirmations.js";
import { registerWorkerEvents } from "./event-tools.js";
import { registerAllWorkersStatus, registerFleetSummary } from "./fleet-tools.js";
import { registerCancelJob, registerGetJob } from "./job-tools.js";
import { registerJoinTools } from "./join-tools.js";
import { registerListWorkers, registerWorkerStatus } from "./status-tools.js";
import type { ToolOptions } from "./tool-kit.js";

export type { ToolOptions } from "./tool-kit.js";

/**
 * The fixed tool set (docs/architecture.md, fixed decision 6). Clients do not reliably re-read tool lists, so
 * nothing here depends on which workers exist: every tool takes the worker or a filter as an argument. Every answer
 * stays within the answer budget (answer-budget.ts), and every list pages with `limit` and `cursor`.
 */
export function registerTools(server: McpServer, manager: Manager, options: ToolOptions): void {
  registerListWorkers(server, manager);
  registerWorkerStatus(server, manager, options);
  registerAllWorkersStatus(server, manager, options);
  registerFleetSummary(server, manager);
  registerWorkerEvents(server, manager);
  registerListActions(server, manager);
  // Tokens are kept per MCP server, so one client's confirmation cannot be spent by another's session.
  const confirmations = new Confirmations({ now: options.now });
  registerRunAction(server, manager, { confirmations, principal: options.principal });
  registerGetJob(server, manager);
  registerCancelJob(server, manager);
  registerJoinTools(server, manager, { confirmations, principal: options.principal });
}
