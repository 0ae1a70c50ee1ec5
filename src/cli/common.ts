import { z } from "zod";
import { duration } from "../config/duration.js";
import { flag, fields } from "../config/load.js";
import { LOG_LEVELS } from "../log.js";
import { Labels } from "../protocol/messages.js";

export const logLevelFlag = () => flag("--log-level <level>", `log level: ${LOG_LEVELS.join(", ")}`, "info");
export const logLevelField = z.enum(LOG_LEVELS);

export const tlsFields = {
  ca: fields.path,
  cert: fields.path,
  key: fields.path,
};

/** `role=db,zone=eu-1` → { role: "db", zone: "eu-1" }. */
export const labelsField = z
  .string()
  .default("")
  .transform((text, ctx) => {
    const out: Record<string, string> = {};
    for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
      const eq = part.indexOf("=");
      if (eq <= 0) {
        ctx.addIssue({ code: "custom", message: `"${part}" is not key=value` });
        return z.NEVER;
      }
      out[part.slice(0, eq)] = part.slice(eq + 1);
    }
    return out;
  })
  .pipe(Labels);

export { duration };

/**
 * Stops once, cleanly, on SIGINT or SIGTERM or whatever else calls the returned trigger (the manager: stdin
 * closing), then exits 0. A second signal exits at once, for an operator whose clean stop is taking too long,
 * and a stop that hangs is cut off after 10 s.
 */
export function shutdownOn(stop: (why: string) => Promise<void>): (why: string) => void {
  let stopping = false;
  const trigger = (why: string) => {
    if (stopping) {
      if (why.startsWith("SIG")) process.exit(1);
      return;
    }
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    stop(why).then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => trigger(signal));
  return trigger;
}
