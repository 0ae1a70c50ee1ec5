import { MAX_KEPT_OUTPUT_BYTES, type OutputChunk } from "../protocol/actions.js";

/** What the manager keeps of all invocations' output at once, by default; past it the oldest finished jobs' go first. */
export const DEFAULT_OUTPUT_BUDGET_BYTES = 256 * 1024 * 1024;

/**
 * A stream's kept chunks: none, the one chunk itself (most outputs are a single frame), or the chunks in order.
 * An array per stream per invocation is a few hundred bytes that ten thousand invocations of one job would hold.
 */
type Chunks = string | string[] | undefined;

interface Kept {
  stdout: Chunks;
  stderr: Chunks;
  bytes: number;
  /** Some of what was streamed is not here: over the per-invocation or the manager-wide bound. */
  dropped: boolean;
  /** The worker itself kept less than the program wrote (from the final result). */
  partial: boolean;
}

export interface KeptText {
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/**
 * The output streamed to the manager, per invocation (at most MAX_KEPT_OUTPUT_BYTES each, counted in UTF-8 bytes
 * as the worker counts them), under one manager-wide budget. Jobs are held in the order they started; when the
 * budget is spent, the oldest finished jobs' outputs are dropped whole (their tails stay in the job), and if only
 * running jobs hold output, what comes next is not kept.
 */
export class OutputKeeper {
  private readonly jobs = new Map<string, { finished: boolean; byWorker: Map<string, Kept> }>();
  private total = 0;

  constructor(private readonly budgetBytes = DEFAULT_OUTPUT_BUDGET_BYTES) {}

  get bytes(): number {
    return this.total;
  }

  /** A job started: its outputs are kept from now on, and ranked by this moment. */
  open(jobId: string): void {
    if (!this.jobs.has(jobId)) this.jobs.set(jobId, { finished: false, byWorker: new Map() });
  }

  /** The job ended: its outputs may now be dropped for newer ones. */
  finished(jobId: string): void {
    const job = this.jobs.get(jobId);
    if (job) job.finished = true;
  }

  append(jobId: string, worker: string, chunk: OutputChunk): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    let kept = job.byWorker.get(worker);
    if (!kept) {
      kept = { stdout: undefined, stderr: undefined, bytes: 0, dropped: false, partial: false };
      job.byWorker.set(worker, kept);
    }
    const size = Buffer.byteLength(chunk.data);
    if (kept.bytes + size > MAX_KEPT_OUTPUT_BYTES || !this.makeRoom(size, jobId)) {
      kept.dropped = true;
      return;
    }
    const was = kept[chunk.stream];
    if (was === undefined) kept[chunk.stream] = chunk.data;
    else if (typeof was === "string") kept[chunk.stream] = [was, chunk.data];
    else was.push(chunk.data);
    kept.bytes += size;
    this.total += size;
  }

  /**
   * The final result's tail of a stream, as the kept string itself when they are the same text: a short output
   * (most are) would otherwise be held twice, once as the kept chunk and once as the tail the result repeats.
   */
  shareTail(jobId: string, worker: string, stream: OutputChunk["stream"], tail: string): string {
    const chunks = this.jobs.get(jobId)?.byWorker.get(worker)?.[stream];
    return chunks === tail ? chunks : tail;
  }

  /** The worker's final result said it kept less than the program wrote. */
  markPartial(jobId: string, worker: string): void {
    const kept = this.jobs.get(jobId)?.byWorker.get(worker);
    if (kept) kept.partial = true;
  }

  /** An invocation's kept output, or undefined if none is kept (never streamed, dropped, or from before a restart). */
  get(jobId: string, worker: string): KeptText | undefined {
    const kept = this.jobs.get(jobId)?.byWorker.get(worker);
    if (!kept || (kept.bytes === 0 && kept.dropped)) return undefined;
    return { stdout: text(kept.stdout), stderr: text(kept.stderr), truncated: kept.dropped || kept.partial };
  }

  /** The job left the history: everything it kept goes. */
  drop(jobId: string): void {
    const job = this.jobs.get(jobId);
    if (!job) return;
    for (const kept of job.byWorker.values()) this.total -= kept.bytes;
    this.jobs.delete(jobId);
  }

  /** Drops the oldest finished jobs' outputs (never `current`'s) until `size` more bytes fit; false if they cannot. */
  private makeRoom(size: number, current: string): boolean {
    if (this.total + size <= this.budgetBytes) return true;
    for (const [id, job] of this.jobs) {
      if (!job.finished || id === current || job.byWorker.size === 0) continue;
      for (const kept of job.byWorker.values()) this.total -= kept.bytes;
      job.byWorker.clear();
      if (this.total + size <= this.budgetBytes) return true;
    }
    return false;
  }
}

function text(chunks: Chunks): string {
  return chunks === undefined ? "" : typeof chunks === "string" ? chunks : chunks.join("");
}
