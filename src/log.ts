import { pino, type DestinationStream, type Logger } from "pino";
import { LogSink } from "./log-sink.js";

export type { Logger };
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * What the log may hold in memory while its reader (journald, Claude Desktop, a pipe) is not keeping up; past this,
 * lines are dropped and counted rather than waited for.
 */
export const LOG_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * The one logger: JSON lines on stderr, because in the manager stdout belongs to MCP. Levels are written as names
 * ("level":"warn") for people and jq alike. Lines are written at once, and never wait for a slow reader (see
 * LogSink); those still queued when the process exits are written then.
 */
export function createLogger(options: { name: string; level?: LogLevel; /** Tests read the lines here instead. */ destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? stderrSink(options.name),
  );
}

function stderrSink(name: string): DestinationStream {
  // A pipe handed to us as stderr is in blocking mode until Node opens its own stream on it, which switches fd 2
  // to non-blocking: only then does a full pipe refuse a write (EAGAIN) instead of stopping the process in it.
  void process.stderr;
  return new LogSink(2, {
    maxQueuedBytes: LOG_QUEUE_BYTES,
    dropLine: (dropped) =>
      `${JSON.stringify({ level: "warn", time: new Date().toISOString(), pid: process.pid, name, dropped, msg: "log lines dropped: the log's reader was not keeping up" })}\n`,
  });
}
