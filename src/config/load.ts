import { Option, type Command } from "commander";
import { z } from "zod";
import { FleetError } from "../errors.js";

export const ENV_PREFIX = "MCP_FLEET_";

/**
 * `--heartbeat-interval` → `MCP_FLEET_HEARTBEAT_INTERVAL`; `--no-mdns` → `MCP_FLEET_NO_MDNS`. A negated flag keeps
 * its "no": commander treats a boolean flag's variable as set-or-unset, so `MCP_FLEET_MDNS=0` would have meant
 * "turn mDNS off", the opposite of what it reads.
 */
export function envName(longFlag: string): string {
  return ENV_PREFIX + longFlag.replace(/^--/, "").replace(/-/g, "_").toUpperCase();
}

/**
 * A flag that can also be set from the environment, for systemd units and containers. Precedence is the usual
 * one: the command line, then the environment, then the default.
 */
export function flag(flags: string, description: string, defaultValue?: string): Option {
  const long = flags.split(/[ ,|]+/).find((f) => f.startsWith("--"));
  if (!long) throw new Error(`flag ${flags} has no long form`);
  const option = new Option(flags, description).env(envName(long));
  if (defaultValue !== undefined) option.default(defaultValue);
  return option;
}

function describeKey(command: Command, key: string): string {
  const option = command.options.find((o) => o.attributeName() === key);
  if (!option?.long) return key;
  return option.envVar ? `${option.long} (${option.envVar})` : option.long;
}

/**
 * The one config loader: validates what commander collected (flags, environment, defaults) against a zod
 * schema and returns typed values, or throws one error that lists every bad setting by its flag and variable.
 */
export function loadConfig<S extends z.ZodType>(schema: S, command: Command): z.infer<S> {
  const parsed = schema.safeParse(command.opts());
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const key = issue.path[0];
    const name = typeof key === "string" ? describeKey(command, key) : "options";
    const missing = issue.code === "invalid_type" && /received undefined/.test(issue.message);
    return `  ${name}: ${missing ? "is required" : issue.message}`;
  });
  throw new FleetError("E_CONFIG", `invalid settings:\n${lines.join("\n")}`);
}

/** Reusable field schemas, so every command reads a port or a count the same way. */
export const fields = {
  port: z.coerce.number().int("must be a whole number").min(0).max(65535, "must be 0–65535"),
  positiveInt: (max = 1_000_000) => z.coerce.number().int("must be a whole number").min(1).max(max),
  path: z.string().min(1, "must name a file"),
  optionalPath: z.string().min(1).optional(),
};
