import si from "systeminformation";
import { PROCESS_COMMAND_MAX, PROCESS_LIMIT_MAX, PROCESS_NAME_MAX, type ProcessesResult } from "../../../protocol/diagnostics.js";
import { toDisplay, toToken } from "../../../protocol/text.js";
import { builtinEntry, singleFlight, within, type Builtin } from "./builtin.js";
import { fitList } from "./fit.js";

type Row = ProcessesResult["processes"][number];
type ProcessData = si.Systeminformation.ProcessesProcessData;

// About 80 ms with two spawns, some of it blocking: concurrent runs share one call.
const listProcesses = singleFlight(() => si.processes());

export const processes: Builtin = {
  entry: builtinEntry({
    name: "processes",
    description: "The busiest processes on the host by CPU or memory: pid, user, command line, CPU and memory use.",
    params: {
      sort: { type: "string", enum: ["cpu", "memory"], default: "cpu", required: false, description: "what to rank by" },
      limit: { type: "integer", minimum: 1, maximum: PROCESS_LIMIT_MAX, default: 10, required: false, description: "how many to list" },
    },
    timeoutMs: 15_000,
    concurrency: 2,
  }),

  async run(args, ctx) {
    const sort = args.sort === "memory" ? "memory" : "cpu";
    const limit = typeof args.limit === "number" ? args.limit : 10;
    const data = await within(listProcesses(), ctx.timeoutMs, ctx.signal, "the process list");
    const key = sort === "cpu" ? (p: ProcessData) => p.cpu : (p: ProcessData) => p.mem;
    const ranked = data.list
      .filter((p) => Number.isSafeInteger(p.pid) && p.pid >= 0)
      .sort((a, b) => (key(b) || 0) - (key(a) || 0) || a.pid - b.pid)
      .slice(0, limit)
      .map(toRow);
    return fitList(ranked, (kept, omitted): ProcessesResult => ({ sort, total: data.list.length, processes: [...kept], omitted }));
  },
};

function toRow(p: ProcessData): Row {
  const command = p.params ? `${p.command} ${p.params}` : p.command;
  return {
    pid: p.pid,
    ppid: Number.isSafeInteger(p.parentPid) && p.parentPid >= 0 ? p.parentPid : null,
    user: toToken(String(p.user ?? ""), 32),
    name: toDisplay(String(p.name ?? ""), PROCESS_NAME_MAX),
    command: toDisplay(String(command ?? ""), PROCESS_COMMAND_MAX),
    state: toToken(String(p.state ?? ""), 16),
    cpuPercent: clamp(p.cpu, 100_000),
    memoryPercent: clamp(p.mem, 100),
    // systeminformation gives kilobytes.
    rssBytes: Math.round(clamp(p.memRss, Number.MAX_SAFE_INTEGER / 1024) * 1024),
    startedAt: localTime(p.started),
  };
}

function clamp(value: number, max: number): number {
  return Number.isFinite(value) ? Math.min(max, Math.max(0, Math.round(value * 100) / 100)) : 0;
}

/** systeminformation's "YYYY-MM-DD HH:MM:SS", in the host's time zone, as an ISO instant. */
function localTime(text: string | undefined): string | null {
  if (!text || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(text)) return null;
  const t = new Date(text.replace(" ", "T"));
  return Number.isFinite(t.getTime()) ? t.toISOString() : null;
}
