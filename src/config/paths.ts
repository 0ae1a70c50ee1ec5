import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where the manager keeps what it learned, by each platform's convention: $XDG_DATA_HOME (~/.local/share) on
 * Linux, ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows.
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === "darwin") return join(homedir(), "Library", "Application Support", "mcp-fleet");
  if (platform === "win32") return join(env.LOCALAPPDATA ?? join(homedir(), "AppData", "Local"), "mcp-fleet");
  return join(env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "mcp-fleet");
}

export function defaultStateFile(): string {
  return join(defaultDataDir(), "state.json");
}
