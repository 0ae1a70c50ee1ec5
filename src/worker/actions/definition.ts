import { isAbsolute } from "node:path";
import { z } from "zod";
import { duration } from "../../config/duration.js";
import {
  ActionName,
  ActionText,
  CatalogEntry,
  DEFAULT_ACTION_TIMEOUT_MS,
  MAX_ACTION_TIMEOUT_MS,
  ParamDefs,
  type ParamDef,
} from "../../protocol/actions.js";
import { checkArguments, compilePattern, type ArgumentValue } from "../../protocol/arguments.js";

/**
 * A command action as its host's administrator defines it: one JSON file in the actions dir. The manager only
 * ever names the action and passes arguments; each argument becomes one whole argv item, so nothing it sends can
 * turn into a second command, an option or a redirection.
 */

/** A placeholder is a whole argv item: `{name}`. */
const PLACEHOLDER = /^\{([a-z][a-z0-9_]{0,31})\}$/;
/** Anything inside an item that looks like a placeholder; in any item but a whole placeholder it is refused. */
const EMBEDDED_PLACEHOLDER = /\{[A-Za-z_][A-Za-z0-9_]*\}/;

/** A definition file larger than this is refused unread. */
export const MAX_DEFINITION_BYTES = 64 * 1024;

const ArgvItem = z.string().min(1, "must not be empty").max(4096).refine((s) => !s.includes("\0"), "must not contain a NUL character");

export const CommandActionFile = z
  .object({
    // Dotted names belong to the tools of MCP servers on the host (`<server>.<tool>`).
    name: ActionName.refine((n) => !n.includes("."), "must not contain a dot (those name MCP tools)"),
    description: ActionText,
    argv: z.array(ArgvItem).min(1).max(256),
    params: ParamDefs.default({}),
    timeout: duration({ min: 100, max: MAX_ACTION_TIMEOUT_MS }).default(DEFAULT_ACTION_TIMEOUT_MS),
    destructive: z.boolean().default(true),
    concurrency: z.number().int().min(1).max(64).default(4),
  })
  .strict();

/** An argv item: a literal, or the value of a parameter. */
export type ArgvTemplateItem = { literal: string } | { param: string };

export interface CommandAction {
  entry: CatalogEntry;
  argv: ArgvTemplateItem[];
  /** The file it came from, for log lines. */
  file: string;
}

export class DefinitionError extends Error {
  constructor(
    readonly file: string,
    /** Where in the file: `argv.2`, `params.unit.pattern`, `timeout`; `file` for the file as a whole. */
    readonly field: string,
    /** What is wrong with the field, without the file and field. */
    readonly reason: string,
  ) {
    super(`${file}: ${field}: ${reason}`);
    this.name = "DefinitionError";
  }
}

export type ParsedDefinition = { ok: true; action: CommandAction } | { ok: false; error: DefinitionError };

/** Reads one definition file's text. Never throws: a bad file is refused with its file and field named. */
export function parseDefinition(file: string, text: string): ParsedDefinition {
  const fail = (field: string, message: string): ParsedDefinition => ({ ok: false, error: new DefinitionError(file, field, message) });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail("file", `is not JSON (${(err as Error).message.slice(0, 120)})`);
  }
  const parsed = CommandActionFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A bad record key (a parameter's name) carries its own issue, which says what a name must be.
    const inner = issue.code === "invalid_key" ? issue.issues[0]?.message : undefined;
    return fail(issue.path.length > 0 ? issue.path.map(String).join(".") : "file", inner ?? issue.message);
  }
  const def = parsed.data;
  const program = def.argv[0]!;
  if (!isAbsolute(program)) return fail("argv.0", "must be an absolute path to the program");
  if (EMBEDDED_PLACEHOLDER.test(program)) return fail("argv.0", "must name the program itself, not a parameter");
  const argv: ArgvTemplateItem[] = [];
  for (const [i, item] of def.argv.entries()) {
    const whole = PLACEHOLDER.exec(item);
    if (whole) {
      const name = whole[1]!;
      if (!Object.hasOwn(def.params, name)) return fail(`argv.${i}`, `names {${name}}, which is not a declared parameter`);
      argv.push({ param: name });
    } else if (/^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(item)) {
      return fail(`argv.${i}`, `names ${item}, which is not a declared parameter`);
    } else if (EMBEDDED_PLACEHOLDER.test(item)) {
      return fail(`argv.${i}`, "a placeholder must be a whole argv item, like \"{name}\"");
    } else {
      argv.push({ literal: item });
    }
  }
  for (const [name, param] of Object.entries(def.params)) {
    const problem = checkParam(param);
    if (problem) return fail(`params.${name}.${problem.field}`, problem.message);
    // A default is held to its own parameter's rules, so a run that relies on it cannot fail on it.
    if (param.default === undefined) continue;
    const checked = checkArguments({ [name]: param }, {});
    if (!checked.ok) return fail(`params.${name}.default`, checked.message);
  }
  const entry = CatalogEntry.parse({
    name: def.name,
    kind: "command",
    description: def.description,
    destructive: def.destructive,
    params: def.params,
    timeoutMs: def.timeout,
    concurrency: def.concurrency,
  });
  return { ok: true, action: { entry, argv, file } };
}

function checkParam(param: ParamDef): { field: string; message: string } | null {
  switch (param.type) {
    case "string":
      if (param.pattern !== undefined && compilePattern(param.pattern) === null) return { field: "pattern", message: "is not a valid regular expression" };
      if (param.enum?.some((v) => v.length > param.maxLength)) return { field: "enum", message: "lists a value longer than maxLength" };
      return null;
    case "integer":
      if (param.minimum !== undefined && param.maximum !== undefined && param.minimum > param.maximum) {
        return { field: "minimum", message: "is greater than maximum" };
      }
      return null;
    case "boolean":
      return null;
  }
}

/**
 * The argv of one invocation: each placeholder replaced by its checked value as one item, an optional parameter
 * without a value dropping its item. `values` must come from checkArguments against the action's parameters.
 */
export function renderArgv(template: readonly ArgvTemplateItem[], values: Readonly<Record<string, ArgumentValue>>): string[] {
  const argv: string[] = [];
  for (const item of template) {
    if ("literal" in item) {
      argv.push(item.literal);
      continue;
    }
    const value = Object.hasOwn(values, item.param) ? values[item.param] : undefined;
    if (value === undefined) continue;
    argv.push(typeof value === "boolean" ? (value ? "true" : "false") : String(value));
  }
  return argv;
}
