import { z } from "zod";
import { CancelParams, CancelResult, ListParams, ListResult, RunParams, RunResult } from "./actions.js";
import { InstallParams, InstallResult, RenewParams, RenewResult } from "./renewal.js";
import { FullStatus } from "./status.js";

/**
 * Requests the manager may send a worker, each with the schema of its answer. The manager validates answers
 * against these, so a confused or hostile worker cannot hand the MCP client malformed data.
 */
export const METHODS = {
  "status.snapshot": { params: z.object({}).strict().optional(), result: FullStatus },
  "actions.list": { params: ListParams, result: ListResult },
  "actions.run": { params: RunParams, result: RunResult },
  "actions.cancel": { params: CancelParams, result: CancelResult },
  "certificate.renew": { params: RenewParams, result: RenewResult },
  "certificate.install": { params: InstallParams, result: InstallResult },
} as const;

export type MethodName = keyof typeof METHODS;
export type MethodResult<M extends MethodName> = z.infer<(typeof METHODS)[M]["result"]>;
export type MethodParams<M extends MethodName> = z.infer<(typeof METHODS)[M]["params"]>;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}
