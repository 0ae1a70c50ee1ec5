import type { Readable } from "node:stream";
import type { Logger } from "../../log.js";
import { toDisplay } from "../../protocol/text.js";

const MAX_LINE_CHARS = 1000;
const LINES_PER_MINUTE = 120;

/**
 * A hosted server's stderr, as debug lines in our log: each line cut, at most LINES_PER_MINUTE a minute (the rest
 * counted), so a chatty or hostile server can neither flood the log nor stall on a full pipe (the stream is always
 * read).
 */
export function logServerStderr(stream: Readable, log: Logger, server: string): void {
  let partial = "";
  let windowStart = Date.now();
  let written = 0;
  let dropped = 0;
  const emit = (line: string) => {
    const now = Date.now();
    if (now - windowStart >= 60_000) {
      if (dropped > 0) log.debug({ server, dropped }, "MCP server stderr lines dropped");
      windowStart = now;
      written = 0;
      dropped = 0;
    }
    if (written >= LINES_PER_MINUTE) {
      dropped++;
      return;
    }
    written++;
    log.debug({ server, stderr: toDisplay(line, MAX_LINE_CHARS) }, "MCP server stderr");
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    // A line that never ends is written in pieces rather than held.
    if (partial.length > MAX_LINE_CHARS) {
      lines.push(partial);
      partial = "";
    }
    for (const line of lines) if (line.length > 0) emit(line);
  });
  stream.on("end", () => {
    if (partial.length > 0) emit(partial);
    if (dropped > 0) log.debug({ server, dropped }, "MCP server stderr lines dropped");
  });
  stream.on("error", () => {});
}
