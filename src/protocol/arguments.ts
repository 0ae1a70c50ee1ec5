import type { Arguments, ParamDef, ParamDefs } from "./actions.js";

export type ArgumentValue = string | number | boolean;

export type CheckedArguments =
  | { ok: true; values: Record<string, ArgumentValue> }
  | { ok: false; param: string; message: string };

/**
 * Arguments against an action's declared parameters. The manager runs this before it sends anything (so an
 * assistant learns which parameter is wrong at once) and the worker runs it again before it runs anything (so a
 * manager cannot skip it). Messages name the parameter and the rule, never the value.
 */
export function checkArguments(params: ParamDefs, args: Arguments): CheckedArguments {
  for (const name of Object.keys(args)) {
    if (!Object.hasOwn(params, name)) return { ok: false, param: name.slice(0, 32), message: "is not a parameter of this action" };
  }
  const values: Record<string, ArgumentValue> = {};
  for (const [name, def] of Object.entries(params)) {
    const given = Object.hasOwn(args, name) ? args[name] : undefined;
    const value = given === undefined || given === null ? def.default : given;
    if (value === undefined) {
      if (def.required) return { ok: false, param: name, message: "is required" };
      continue;
    }
    const problem = checkValue(def, value);
    if (problem) return { ok: false, param: name, message: problem };
    values[name] = value as ArgumentValue;
  }
  return { ok: true, values };
}

const patternCache = new Map<string, RegExp | null>();

/** The anchored form of a parameter's pattern, or null if it is not a valid regular expression. */
export function compilePattern(pattern: string): RegExp | null {
  let re = patternCache.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(`^(?:${pattern})$`, "u");
    } catch {
      re = null;
    }
    if (patternCache.size > 1024) patternCache.clear();
    patternCache.set(pattern, re);
  }
  return re;
}

function checkValue(def: ParamDef, value: unknown): string | null {
  switch (def.type) {
    case "string": {
      if (typeof value !== "string") return "must be a string";
      if (value.length > def.maxLength) return `must be at most ${def.maxLength} characters`;
      if (value.includes("\0")) return "must not contain a NUL character";
      if (!def.allowLeadingDash && value.startsWith("-")) return 'must not begin with "-"';
      if (def.enum && !def.enum.includes(value)) return `must be one of ${def.enum.join(", ").slice(0, 300)}`;
      if (def.pattern !== undefined) {
        const re = compilePattern(def.pattern);
        if (!re || !re.test(value)) return `must match the pattern ${def.pattern.slice(0, 100)}`;
      }
      return null;
    }
    case "integer":
      if (typeof value !== "number" || !Number.isSafeInteger(value)) return "must be a whole number";
      if (def.minimum !== undefined && value < def.minimum) return `must be at least ${def.minimum}`;
      if (def.maximum !== undefined && value > def.maximum) return `must be at most ${def.maximum}`;
      return null;
    case "boolean":
      return typeof value === "boolean" ? null : "must be true or false";
  }
}
