import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { toolError } from "./tool-kit.js";

export const VIEWER_NOTE = "A viewer certificate may not call it (E_FORBIDDEN): it needs the operator role.";

/** What a viewer's session answers for a tool that acts. */
export function forbidden(tool: string, viewer: string): ReturnType<typeof toolError> {
  return toolError(`E_FORBIDDEN: ${tool} needs the operator role; this session's certificate is viewer "${viewer}". Nothing was done.`);
}

/**
 * Makes every tool registered on `server` from here on that is not annotated read-only answer E_FORBIDDEN, and
 * say so in its description. The tools stay listed: the tool set is fixed whoever connects (docs/architecture.md),
 * and a model that sees a tool refuse with the reason tells its user more than one that never sees it. Judged by
 * the annotation, so a tool added later is covered without anyone remembering this list.
 */
export function restrictToReading(server: McpServer, viewer: string): void {
  const register = server.registerTool.bind(server) as (name: string, config: { description?: string; annotations?: { readOnlyHint?: boolean } }, cb: unknown) => unknown;
  const guarded = (name: string, config: { description?: string; annotations?: { readOnlyHint?: boolean } }, cb: unknown) => {
    if (config.annotations?.readOnlyHint === true) return register(name, config, cb);
    return register(name, { ...config, description: `${config.description ?? ""} ${VIEWER_NOTE}`.trim() }, async () => forbidden(name, viewer));
  };
  server.registerTool = guarded as unknown as McpServer["registerTool"];
}
