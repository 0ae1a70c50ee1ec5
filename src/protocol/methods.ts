import { z } from "zod";
import { FullStatus } from "./status.js";

/**
 * Requests the manager may send a worker, each with the schema of its answer. The manager validates answers
 * against these, so a confused or hostile worker cannot hand the MCP client malformed data.
 */
export const METHODS = {
  "status.snapshot": { params: z.object({}).strict().optional(), result: FullStatus },
} as const;

export type MethodName = keyof typeof METHODS;
export type MethodResult<M extends MethodName> = z.infer<(typeof METHODS)[M]["result"]>;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}
