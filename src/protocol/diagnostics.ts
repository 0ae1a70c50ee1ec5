import type { z } from "zod";

/** Placeholder until the built-in diagnostics' output schemas land: the manager checks a builtin's `structured` against these. */
export const DIAGNOSTIC_OUTPUTS: Record<string, z.ZodObject> = {};
