import { pino, type DestinationStream, type Logger } from "pino";

export type { Logger };
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The one logger: JSON lines on stderr, because in the manager stdout belongs to MCP. Synchronous writes so the
 * last lines before an exit are not lost. Levels are written as names ("level":"warn") for people and jq alike.
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
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
