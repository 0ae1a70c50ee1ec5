import type { CatalogEntry } from "../../../protocol/actions.js";
import type { ArgumentValue } from "../../../protocol/arguments.js";

export interface Builtin {
  entry: CatalogEntry; // kind "builtin"
  run(args: Record<string, ArgumentValue>, ctx: { signal: AbortSignal; timeoutMs: number }): Promise<Record<string, unknown>>;
}

export const BUILTINS: Builtin[] = [];
