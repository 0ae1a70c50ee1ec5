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
 *
 * Lines logged in one turn of the event loop go out in one write at its end: a reconnect storm logs two lines
 * per worker, and one write per line was 30 µs each, 0.7 s of the manager's CPU in a storm of 10,000 (profiled).
 * A process killed outright (SIGKILL) loses at most that turn's lines; any exit Node sees writes them.
 */
export class LogSink {
  private readonly queue: Buffer[] = [];
  /** This turn's lines, not yet handed to the fd. */
  private turn: Buffer[] = [];
  private turnFlush: NodeJS.Immediate | null = null;
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
    this.turn.push(Buffer.from(line));
    this.turnFlush ??= setImmediate(() => this.endTurn());
  }

  private endTurn(): void {
    this.turnFlush = null;
    if (this.turn.length === 0 || this.broken) return void (this.turn = []);
    const lines = this.turn;
    this.turn = [];
    // Behind queued lines, these wait their turn so the order holds.
    let written = this.queue.length === 0 ? this.tryWrite(lines.length === 1 ? lines[0]! : Buffer.concat(lines)) : "refused";
    if (written === "refused") written = 0;
    // What the reader did not take queues line by line, so a drop is counted in lines.
    for (const line of lines) {
      if (written >= line.length) written -= line.length;
      else {
        this.enqueue(written > 0 ? line.subarray(written) : line);
        written = 0;
      }
    }
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
    for (;;) {
      // No loop turn will end after exit: this turn's lines, and the count of dropped lines that drain() logs once
      // the queue is out, are handed over here.
      if (this.turnFlush) clearImmediate(this.turnFlush);
      this.endTurn();
      const drained = this.drain();
      if (drained && this.turn.length > 0) continue;
      if (drained || performance.now() >= deadline) break;
      Atomics.wait(nap, 0, 0, 5);
    }
    // drain() schedules a retry while lines remain; no event loop runs after exit to serve it.
    if (this.retry) clearTimeout(this.retry);
  }
}
