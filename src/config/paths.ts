import { homedir } from "node:os";
import { join } from "node:path";
import { FleetError } from "../errors.js";

/**
 * The user's home directory, or a configuration error naming the flag that makes it unnecessary. A service
 * user may have none: a systemd DynamicUser on a host without libnss-systemd has no passwd entry and no $HOME,
 * and `os.homedir()` then throws ENOENT.
 */
function home(flagName: string): string {
  try {
    return homedir();
  } catch {
    throw new FleetError("E_CONFIG", `this user has no home directory to keep the default files in: pass ${flagName}`);
  }
}

/**
 * Where the manager keeps what it learned, by each platform's convention: $XDG_DATA_HOME (~/.local/share) on
 * Linux, ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows. The home directory is looked up
 * only when it is needed, so a setting that makes it unnecessary also makes a user without one work.
 */
export function defaultDataDir(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  flagName = "--state",
): string {
  if (platform === "darwin") return join(home(flagName), "Library", "Application Support", "mcp-fleet");
  if (platform === "win32") return join(env.LOCALAPPDATA ?? join(home(flagName), "AppData", "Local"), "mcp-fleet");
  return join(env.XDG_DATA_HOME || join(home(flagName), ".local", "share"), "mcp-fleet");
}

/** The manager's state file when `--state` is not given; computed when the manager starts, never for other commands. */
export function defaultStateFile(): string {
  return join(defaultDataDir(), "state.json");
}

/** How `--help` names the default, without looking anything up. */
export const DEFAULT_STATE_HINT = "state.json in the platform's data directory, ~/.local/share/mcp-fleet on Linux";
