import { StringDecoder } from "node:string_decoder";
import { MAX_KEPT_OUTPUT_BYTES, TAIL_BYTES, type OutputChunk } from "../../protocol/actions.js";

export type OutputStream = OutputChunk["stream"];

export interface StreamSummary {
  tail: string;
  bytes: number;
  kept: number;
}

class StreamState {
  bytes = 0;
  kept = 0;
  tail: Buffer = Buffer.alloc(0);
  /** Holds the bytes of a character split across two chunks, so it is decoded whole. */
  readonly decoder = new StringDecoder("utf8");
  streaming = true;
}

/**
 * What is kept of an invocation's output: every byte counted, the first MAX_KEPT_OUTPUT_BYTES over both streams
 * passed on as text (to be streamed to the manager), and the last TAIL_BYTES of each stream for the final answer.
 * Memory stays bounded whatever the program writes: the tail is the only thing held.
 */
export class OutputCapture {
  private kept = 0;
  private readonly streams: Record<OutputStream, StreamState> = { stdout: new StreamState(), stderr: new StreamState() };

  constructor(private readonly onOutput: (stream: OutputStream, text: string) => void) {}

  write(stream: OutputStream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    const s = this.streams[stream];
    s.bytes += chunk.length;
    s.tail =
      chunk.length >= TAIL_BYTES
        ? Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES))
        : Buffer.concat([s.tail.subarray(Math.max(0, s.tail.length + chunk.length - TAIL_BYTES)), chunk]);
    if (!s.streaming) return;
    const part = chunk.subarray(0, MAX_KEPT_OUTPUT_BYTES - this.kept);
    this.kept += part.length;
    s.kept += part.length;
    this.emit(stream, s.decoder.write(part));
    if (this.kept >= MAX_KEPT_OUTPUT_BYTES) this.endStreaming();
  }

  /** Passes on what the decoders still hold and returns each stream's summary. */
  finish(): Record<OutputStream, StreamSummary> {
    this.endStreaming();
    return { stdout: summary(this.streams.stdout), stderr: summary(this.streams.stderr) };
  }

  private endStreaming(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const s = this.streams[stream];
      if (!s.streaming) continue;
      s.streaming = false;
      this.emit(stream, s.decoder.end());
    }
  }

  private emit(stream: OutputStream, text: string): void {
    if (text.length > 0) this.onOutput(stream, text);
  }
}

function summary(s: StreamState): StreamSummary {
  let tail = s.tail;
  // A tail cut from a longer stream may begin inside a character: its continuation bytes are not text.
  if (s.bytes > tail.length) {
    let skip = 0;
    while (skip < 3 && skip < tail.length && (tail[skip]! & 0xc0) === 0x80) skip++;
    tail = tail.subarray(skip);
  }
  return { tail: tail.toString("utf8"), bytes: s.bytes, kept: s.kept };
}
