import { DISK_PATH_MAX, UNIT_NAME_MAX, type ServiceStatusResult } from "../../../protocol/diagnostics.js";
import { toDisplay, toToken } from "../../../protocol/text.js";
import { builtinEntry, DiagnosticError, type Builtin } from "./builtin.js";
import { capture } from "./command.js";
import { commandFailure, UNIT_PARAM } from "./systemd.js";

const PROPERTIES = [
  "Id",
  "LoadState",
  "ActiveState",
  "SubState",
  "UnitFileState",
  "Description",
  "MainPID",
  "ExecMainStatus",
  "Result",
  "NRestarts",
  "MemoryCurrent",
  "ActiveEnterTimestamp",
  "StateChangeTimestamp",
  "FragmentPath",
] as const;

export const serviceStatus: Builtin = {
  entry: builtinEntry({
    name: "service_status",
    description: "A systemd unit's state (systemctl show): load, active and sub state, main pid, restarts, memory, since when.",
    params: { unit: { ...UNIT_PARAM, description: "the unit, e.g. nginx.service (.service may be left out)" } },
    timeoutMs: 15_000,
    concurrency: 4,
  }),

  async run(args, ctx) {
    const unit = String(args.unit);
    // "--" ends the options, so even a unit name that got past its pattern cannot pass as one.
    const out = await capture(["systemctl", "show", "--no-pager", `--property=${PROPERTIES.join(",")}`, "--", unit], ctx);
    if (out.exitCode !== 0) throw commandFailure("systemctl", out);
    if (out.truncated) throw new DiagnosticError("COMMAND_FAILED", "systemctl show wrote more than expected");
    return parseShow(out.stdout.toString("utf8"), unit);
  },
};

/** `systemctl show` output (Key=Value lines) as a result; properties this systemd lacks are null. */
export function parseShow(text: string, unit: string): ServiceStatusResult {
  const props = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const raw = (key: string) => {
    const v = props.get(key);
    return v === undefined || v === "" || v === "n/a" || v === "[not set]" ? null : v;
  };
  const token = (key: string, max: number) => {
    const v = raw(key);
    return v === null ? null : toToken(v, max);
  };
  const int = (key: string, max: number) => {
    const v = raw(key);
    if (v === null || !/^-?\d+$/.test(v)) return null;
    const n = Number(v);
    // systemd writes "unset" as the largest 64-bit value.
    return Number.isSafeInteger(n) && Math.abs(n) <= max ? n : null;
  };
  const mainPid = int("MainPID", 2 ** 31 - 1);
  return {
    unit: toToken(raw("Id") ?? unit, UNIT_NAME_MAX),
    loadState: token("LoadState", 32) ?? "unknown",
    activeState: token("ActiveState", 32) ?? "unknown",
    subState: token("SubState", 32) ?? "unknown",
    unitFileState: token("UnitFileState", 32),
    description: toDisplay(raw("Description") ?? "", 256),
    mainPid: mainPid === 0 ? null : mainPid,
    execMainStatus: int("ExecMainStatus", 1024),
    result: token("Result", 32),
    restarts: int("NRestarts", 2 ** 31 - 1),
    memoryBytes: int("MemoryCurrent", Number.MAX_SAFE_INTEGER),
    activeEnterTimestamp: nullableDisplay(raw("ActiveEnterTimestamp"), 64),
    stateChangeTimestamp: nullableDisplay(raw("StateChangeTimestamp"), 64),
    fragmentPath: token("FragmentPath", DISK_PATH_MAX),
  };
}

function nullableDisplay(v: string | null, max: number): string | null {
  return v === null ? null : toDisplay(v, max);
}
