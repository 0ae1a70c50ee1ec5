import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { UNIT_NAME_MAX } from "../../../protocol/diagnostics.js";
import { DiagnosticError } from "./builtin.js";
import { firstLine, type Captured } from "./command.js";

/** Unit names as systemd writes them; no "/" (systemctl would turn a path into a unit name) and no globs. */
export const UNIT_PARAM = { type: "string", pattern: "[A-Za-z0-9@:._-]+", maxLength: UNIT_NAME_MAX } as const;

/** sd_booted(): systemd is the init system exactly when this directory exists. */
export function systemdBooted(): boolean {
  return existsSync("/run/systemd/system");
}

/** Whether the host keeps a journal at all: journalctl on a host without one answers nothing and exits 0. */
export async function journalPresent(): Promise<boolean> {
  for (const dir of ["/run/log/journal", "/var/log/journal"]) {
    try {
      if ((await readdir(dir)).length > 0) return true;
    } catch (err) {
      // Unreadable is not absent: journalctl will say what this user may see.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" && (err as NodeJS.ErrnoException).code !== "ENOTDIR") return true;
    }
  }
  return false;
}

/**
 * A systemd command that exited non-zero: UNAVAILABLE when systemd is not running here; EACCES when this user may
 * not read it (journalctl for a user outside the systemd-journal and adm groups); else COMMAND_FAILED.
 */
export function commandFailure(program: string, out: Captured): DiagnosticError {
  const detail = firstLine(out.stderr) || `exit code ${out.exitCode ?? out.signal}`;
  if (!systemdBooted()) return new DiagnosticError("UNAVAILABLE", `systemd is not the init system on this host (${program}: ${detail})`);
  if (/insufficient permissions|permission denied|access denied/i.test(detail)) return new DiagnosticError("EACCES", `${program}: ${detail}`);
  return new DiagnosticError("COMMAND_FAILED", `${program}: ${detail}`);
}
