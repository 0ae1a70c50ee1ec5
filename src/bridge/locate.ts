import { FleetError } from "../errors.js";
import type { FleetBrowser } from "../discovery/browser.js";
import { MCP_PATH } from "../manager/mcp-http.js";
import { ManagerCandidates } from "../worker/candidates.js";

/** `https://host:7443` or `https://host:7443/mcp` → the manager's MCP endpoint. */
export function mcpUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FleetError("E_CONFIG", `--manager ${JSON.stringify(text)} is not a URL (e.g. https://manager.example:7443)`);
  }
  if (url.protocol !== "https:") throw new FleetError("E_CONFIG", `--manager must be an https:// URL, not ${url.protocol}//`);
  if (url.pathname === "/" || url.pathname === "") url.pathname = MCP_PATH;
  return url;
}

/** The worker's candidate URL (wss://address:port, where workers connect) → the same manager's MCP endpoint. */
export function mcpUrlOfCandidate(candidate: string): URL {
  const url = new URL(candidate.replace(/^wss:/, "https:"));
  url.pathname = MCP_PATH;
  return url;
}

/**
 * Managers of our fleet announced on mDNS, tried the way a worker tries them (most recently heard first, the next
 * one after a failure). None heard yet: waits up to `waitMs` for an announcement, then fails like an unreachable
 * manager, so the bridge keeps looking.
 */
export function announcedManagers(fleet: string, browser: FleetBrowser, waitMs: number): () => Promise<URL> {
  const candidates = new ManagerCandidates(fleet, browser);
  return async () => {
    let next = candidates.next();
    if (next === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        browser.on("change", done);
        function done() {
          clearTimeout(timer);
          browser.off("change", done);
          resolve();
        }
      });
      next = candidates.next();
    }
    if (next === null) throw new Error(`no manager of fleet ${fleet} announced on mDNS (give --manager https://host:7443 to connect without it)`);
    return mcpUrlOfCandidate(next);
  };
}
