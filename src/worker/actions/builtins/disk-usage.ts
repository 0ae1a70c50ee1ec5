import type { Stats } from "node:fs";
import { lstat, opendir, realpath } from "node:fs/promises";
import { join } from "node:path";
import { DISK_PATH_MAX, DISK_USAGE_DEPTH_MAX, DISK_USAGE_LIMIT_MAX, type DiskUsageResult } from "../../../protocol/diagnostics.js";
import { toErrorCode, toToken } from "../../../protocol/text.js";
import { builtinEntry, DiagnosticError, type Builtin } from "./builtin.js";
import { fitList } from "./fit.js";

/** A scan looks at this many directory entries at most, and takes this long at most. */
export const DISK_USAGE_MAX_ENTRIES = 200_000;
export const DISK_USAGE_MAX_MS = 10_000;
// Entries stat'ed at once: enough to keep the thread pool busy, few enough not to crowd out the agent's own I/O.
const STAT_BATCH = 64;

export const diskUsage: Builtin = {
  entry: builtinEntry({
    name: "disk_usage",
    description:
      "The largest directories below a path (like du -x -d depth | sort), by a scan bounded in time and entries; says if it stopped early.",
    params: {
      path: { type: "string", pattern: "/.*", maxLength: 4096, description: "an absolute path to a directory" },
      depth: { type: "integer", minimum: 1, maximum: DISK_USAGE_DEPTH_MAX, default: 1, required: false, description: "how many levels below the path to list" },
      limit: { type: "integer", minimum: 1, maximum: DISK_USAGE_LIMIT_MAX, default: 10, required: false, description: "how many directories to list" },
    },
    timeoutMs: 30_000,
    concurrency: 2,
  }),

  run(args, ctx) {
    return scanDiskUsage(String(args.path), {
      depth: typeof args.depth === "number" ? args.depth : 1,
      limit: typeof args.limit === "number" ? args.limit : 10,
      signal: ctx.signal,
      // Leave the invocation time to send the answer.
      maxMs: Math.min(DISK_USAGE_MAX_MS, Math.floor(ctx.timeoutMs * 0.75)),
      maxEntries: DISK_USAGE_MAX_ENTRIES,
    });
  },
};

export interface ScanOptions {
  depth: number;
  limit: number;
  signal: AbortSignal;
  maxMs: number;
  maxEntries: number;
}

interface Tally {
  bytes: number;
  apparentBytes: number;
  files: number;
}
interface Bucket extends Tally {
  path: string;
  depth: number;
}
interface Pending {
  abs: string;
  rel: string;
  depth: number;
  /** The listed directories (depth 1 … `depth`) this one lies in, itself included: what its entries count towards. */
  chain: Bucket[];
}

/**
 * Walks the tree below `root` depth first, summing allocated and apparent sizes into every directory down to
 * `depth`. The root's own symbolic links are resolved (it is what was asked for); below it no link is followed and
 * no other file system entered, and a file with several hard links counts once.
 */
export async function scanDiskUsage(root: string, opts: ScanOptions): Promise<DiskUsageResult> {
  const deadline = performance.now() + opts.maxMs;
  let top: string;
  let rootStat: Stats;
  try {
    top = await realpath(root);
    rootStat = await lstat(top);
  } catch (err) {
    throw new DiagnosticError(toErrorCode((err as NodeJS.ErrnoException).code, "UNREADABLE"), `cannot read ${toToken(root, 200)}`, { cause: err });
  }
  if (!rootStat.isDirectory()) throw new DiagnosticError("ENOTDIR", `${toToken(root, 200)} is not a directory`);

  const total = { bytes: rootStat.blocks * 512, apparentBytes: rootStat.size, files: 0, directories: 1 };
  const buckets: Bucket[] = [];
  const stack: Pending[] = [{ abs: top, rel: "", depth: 0, chain: [] }];
  const linked = new Set<string>();
  let scanned = 0;
  let unreadable = 0;
  let otherFilesystems = 0;
  let stopReason: "time" | "entries" | undefined;

  const count = (dir: Pending, name: string, st: Stats | null) => {
    if (!st) return;
    if (st.isDirectory()) {
      if (st.dev !== rootStat.dev) {
        otherFilesystems++;
        return;
      }
      total.directories++;
      const rel = dir.rel ? `${dir.rel}/${name}` : name;
      const depth = dir.depth + 1;
      let chain = dir.chain;
      if (depth <= opts.depth) {
        const bucket: Bucket = { path: rel, depth, bytes: 0, apparentBytes: 0, files: 0 };
        buckets.push(bucket);
        chain = [...chain, bucket];
      }
      add(total, chain, st, false);
      stack.push({ abs: join(dir.abs, name), rel, depth, chain });
      return;
    }
    if (st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (linked.has(key)) return;
      linked.add(key);
    }
    add(total, dir.chain, st, true);
  };

  const statAll = async (dir: Pending, names: string[]) => {
    const stats = await Promise.all(names.map((n) => lstat(join(dir.abs, n)).catch(() => null)));
    names.forEach((n, i) => count(dir, n, stats[i] ?? null));
  };

  walk: while (stack.length > 0) {
    if (opts.signal.aborted) throw opts.signal.reason;
    const dir = stack.pop()!;
    let names: string[] = [];
    try {
      // Iterating a Dir closes it when the loop ends, by break or throw included.
      for await (const entry of await opendir(dir.abs, { bufferSize: STAT_BATCH })) {
        if (scanned >= opts.maxEntries) {
          stopReason = "entries";
          break;
        }
        scanned++;
        names.push(entry.name);
        if (names.length >= STAT_BATCH) {
          await statAll(dir, names);
          names = [];
          if (performance.now() > deadline) {
            stopReason = "time";
            break;
          }
          if (opts.signal.aborted) throw opts.signal.reason;
        }
      }
    } catch {
      if (opts.signal.aborted) throw opts.signal.reason;
      unreadable++;
    }
    await statAll(dir, names);
    if (stopReason) break walk;
    if (stack.length > 0 && performance.now() > deadline) {
      stopReason = "time";
      break;
    }
  }

  const largest = buckets.sort((a, b) => b.bytes - a.bytes || (a.path < b.path ? -1 : 1)).slice(0, opts.limit).map(toDirectory);
  return fitList(largest, (kept, omitted): DiskUsageResult => ({
    path: toToken(top, 4096),
    total,
    directories: [...kept],
    omitted,
    scanned,
    stoppedEarly: stopReason !== undefined,
    ...(stopReason ? { stopReason } : {}),
    unreadable,
    otherFilesystems,
  }));
}

function add(total: Tally, chain: readonly Bucket[], st: Stats, isFile: boolean): void {
  const bytes = st.blocks * 512;
  total.bytes += bytes;
  total.apparentBytes += st.size;
  if (isFile) total.files++;
  for (const b of chain) {
    b.bytes += bytes;
    b.apparentBytes += st.size;
    if (isFile) b.files++;
  }
}

function toDirectory(b: Bucket): DiskUsageResult["directories"][number] {
  const path = toToken(b.path, DISK_PATH_MAX);
  const cut = path !== toToken(b.path, Number.MAX_SAFE_INTEGER);
  return { path, ...(cut ? { pathCut: true as const } : {}), depth: b.depth, bytes: b.bytes, apparentBytes: b.apparentBytes, files: b.files };
}
