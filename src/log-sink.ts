import { writeSync } from "node:fs";

/**
 * Where log lines go: a file descriptor (stderr) written synchronously while it takes them, and a bounded queue
 * in memory while it does not.
 *
 * A pipe whose reader is slow (journald busy, an MCP client that reads our stderr lazily) refuses writes with
 * EAGAIN. pino's own synchronous writer then blocks the whole process 100 ms per refusal, which froze the manager
 * for seconds in a reconnect storm; its asynchronous writer loses the chunk it is retrying if the process exits
 * meanwhile. This one never waits while the process runs: refused lines queue, in order, and are retried every
 * `retryMs`. At exit the queue is written out, waiting for the reader at most `exitWaitMs`. Past `maxQueuedBytes`
 * lines are dropped and counted, and the count is logged once the reader has caught up.
 */
export class LogSink {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private retry: NodeJS.Timeout | null = null;
  /** The reader is gone (EPIPE, EBADF): nothing more can be written. */
  private broken = false;

  constructor(
    private readonly fd: number,
    private readonly options: { maxQueuedBytes: number; retryMs?: number; exitWaitMs?: number; dropLine: (dropped: number) => string },
  ) {
    process.once("exit", () => this.flushSync(options.exitWaitMs ?? 2000));
  }

  write(line: string): void {
    if (this.broken) return;
    const buf = Buffer.from(line);
    // Behind queued lines, a line waits its turn so the order holds.
    const written = this.queue.length === 0 ? this.tryWrite(buf) : "refused";
    if (written === "refused") this.enqueue(buf);
    else if (written < buf.length) this.enqueue(buf.subarray(written));
  }

  private enqueue(buf: Buffer): void {
    if (this.queuedBytes + buf.length > this.options.maxQueuedBytes) {
      this.dropped++;
    } else {
      this.queue.push(buf);
      this.queuedBytes += buf.length;
    }
    this.retryLater();
  }

  private retryLater(): void {
    this.retry ??= setTimeout(() => {
      this.retry = null;
      this.drain();
    }, this.options.retryMs ?? 10).unref();
  }

  /** Writes what the reader takes now; true once nothing is left. */
  private drain(): boolean {
    while (this.queue.length > 0 && !this.broken) {
      const head = this.queue[0]!;
      const written = this.tryWrite(head);
      if (written === "refused") break;
      this.queuedBytes -= written;
      if (written < head.length) {
        this.queue[0] = head.subarray(written);
        break;
      }
      this.queue.shift();
    }
    if (this.queue.length > 0 && !this.broken) {
      this.retryLater();
      return false;
    }
    if (this.dropped > 0 && !this.broken) {
      const dropped = this.dropped;
      this.dropped = 0;
      this.write(this.options.dropLine(dropped));
    }
    return true;
  }

  private tryWrite(data: Buffer): number | "refused" {
    try {
      return writeSync(this.fd, data);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EAGAIN" || code === "EWOULDBLOCK") return "refused";
      this.broken = true;
      return 0;
    }
  }

  private flushSync(waitMs: number): void {
    const deadline = performance.now() + waitMs;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while (!this.drain() && performance.now() < deadline) Atomics.wait(nap, 0, 0, 5);
    // drain() schedules a retry while lines remain; no event loop runs after exit to serve it.
    if (this.retry) clearTimeout(this.retry);
  }
}
