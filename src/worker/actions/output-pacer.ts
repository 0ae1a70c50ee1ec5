import { MAX_OUTPUT_CHUNK_CHARS, OUTPUT_FRAMES_PER_SECOND, type OutputChunk } from "../../protocol/actions.js";
import type { OutputStream } from "./output-capture.js";

/** Sends one output frame; `bytesSoFar` counts the UTF-8 bytes of this invocation's output sent until now. */
export type SendOutput = (chunk: OutputChunk, bytesSoFar: number) => void;

interface Queue {
  items: Array<{ stream: OutputStream; text: string }>;
  send: SendOutput;
  sentBytes: number;
  drained: Array<() => void>;
}

export interface PacedOutput {
  write(stream: OutputStream, text: string): void;
  /** Resolves once everything written so far has been sent (or dropped, when the pacer was closed). */
  drain(): Promise<void>;
}

/**
 * The output frames of one session, at most OUTPUT_FRAMES_PER_SECOND over all its invocations, taken from them
 * in turn. Writes are coalesced (a program writing a line every millisecond costs a frame per 8,192 characters,
 * not a frame per line), so the session's message rate stays well inside what the manager allows whatever the
 * programs do. An invocation's final answer waits for its drain, so it never overtakes its own output.
 */
export class OutputPacer {
  private readonly queues = new Map<string, Queue>();
  private timer: NodeJS.Timeout | null = null;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly intervalMs: number;
  private readonly maxChunkChars: number;
  private readonly now: () => number;

  constructor(options: { framesPerSecond?: number; maxChunkChars?: number; now?: () => number } = {}) {
    this.intervalMs = 1000 / (options.framesPerSecond ?? OUTPUT_FRAMES_PER_SECOND);
    this.maxChunkChars = options.maxChunkChars ?? MAX_OUTPUT_CHUNK_CHARS;
    this.now = options.now ?? (() => performance.now());
  }

  open(key: string, send: SendOutput): PacedOutput {
    const queue: Queue = { items: [], send, sentBytes: 0, drained: [] };
    return {
      write: (stream, text) => {
        if (this.closed || text.length === 0) return;
        const last = queue.items.at(-1);
        if (last && last.stream === stream && last.text.length < this.maxChunkChars) last.text += text;
        else queue.items.push({ stream, text });
        if (!this.queues.has(key)) this.queues.set(key, queue);
        this.schedule();
      },
      drain: () => {
        if (this.closed || queue.items.length === 0) return Promise.resolve();
        return new Promise<void>((resolve) => queue.drained.push(resolve));
      },
    };
  }

  /** The session ended: nothing more is sent, and every drain resolves. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const queue of this.queues.values()) settle(queue);
    this.queues.clear();
  }

  private schedule(): void {
    if (this.timer || this.closed || this.queues.size === 0) return;
    const wait = Math.max(0, Math.ceil(this.lastSentAt + this.intervalMs - this.now()));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.sendOne();
      this.schedule();
    }, wait);
  }

  private sendOne(): void {
    const next = this.queues.entries().next();
    if (next.done) return;
    const [key, queue] = next.value;
    const head = queue.items[0]!;
    let cut = Math.min(head.text.length, this.maxChunkChars);
    // Never split a surrogate pair across two frames.
    if (cut < head.text.length && cut > 1 && isHighSurrogate(head.text.charCodeAt(cut - 1))) cut--;
    const data = head.text.slice(0, cut);
    head.text = head.text.slice(cut);
    if (head.text.length === 0) queue.items.shift();
    // Round robin: this invocation goes to the back of the line.
    this.queues.delete(key);
    if (queue.items.length > 0) this.queues.set(key, queue);
    this.lastSentAt = this.now();
    queue.sentBytes += Buffer.byteLength(data, "utf8");
    queue.send({ stream: head.stream, data }, queue.sentBytes);
    if (queue.items.length === 0) settle(queue);
  }
}

function settle(queue: Queue): void {
  const waiting = queue.drained.splice(0);
  for (const resolve of waiting) resolve();
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
