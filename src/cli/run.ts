import { createInterface } from "node:readline/promises";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ElicitRequestSchema, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { Option, type Command } from "commander";
import { z } from "zod";
import { loadConfig } from "../config/load.js";
import { CONFIRMATION_TTL_MS } from "../mcp/confirmations.js";
import { RUN_WAIT_MS } from "../mcp/action-tools.js";
import { ListActionsOutput, RunActionOutput } from "../mcp/job-views.js";
import { callTool } from "./operator-calls.js";
import { out, operatorCommand } from "./operator-command.js";
import { connectionFields, OperatorExit, openClient, type ConnectionSettings } from "./operator-connection.js";
import { EXIT, jobExit, jobView, progressLine } from "./operator-views.js";
import { wholeJob } from "./fleet-commands.js";
import { cell, styleFor } from "./terminal-text.js";

// `mcp-fleet run`: run_action, as an assistant calls it, with the answers a person gives at a terminal: a
// progress bar from the tool's progress notifications, and the confirmation of a destructive action asked y/N.

type Target = { all: true } | { worker_id: string } | { worker_ids: string[] } | { label: string };

/** `--on`: `all`, a worker id, ids separated by commas, `key=value` or `label key[=value]`. */
export function parseTarget(text: string): Target | string {
  const t = text.trim();
  if (t === "all") return { all: true };
  const label = /^label[ :=]\s*(.+)$/.exec(t);
  if (label) return { label: label[1]!.trim() };
  // Worker ids are DNS labels: one with "=" in it is a label selector.
  if (t.includes("=")) return { label: t };
  const ids = t.split(",").map((x) => x.trim()).filter(Boolean);
  if (ids.length === 0) return `--on ${JSON.stringify(text)}: name a worker id, ids separated by commas, key=value, "label key", or all`;
  return ids.length === 1 ? { worker_id: ids[0]! } : { worker_ids: ids };
}

type ParamTypes = Record<string, string | undefined>;

/**
 * `key=value` arguments, each value of the type its parameter declares (list_actions): `limit=3` is a number for
 * an integer parameter and the text "3" for a string one. A parameter no definition declares (an MCP tool's)
 * is read as JSON when it is JSON (numbers, true, false, null, arrays, objects), else as text.
 */
export function parseArguments(pairs: string[], types: ParamTypes): Record<string, unknown> | string {
  const args: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return `argument ${JSON.stringify(pair)} is not key=value`;
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const type = types[key];
    if (type === "string") args[key] = value;
    else if (type === "integer") args[key] = /^-?\d+$/.test(value) ? Number(value) : value;
    else if (type === "boolean") args[key] = value === "true" ? true : value === "false" ? false : value;
    else {
      try {
        args[key] = JSON.parse(value);
      } catch {
        args[key] = value;
      }
    }
  }
  return args;
}

/** The parameter types the action's definitions declare, where they agree. */
async function paramTypes(client: Client, s: ConnectionSettings, action: string, target: Target): Promise<ParamTypes> {
  const filter = "worker_id" in target ? { worker_id: target.worker_id } : "label" in target ? { label: target.label } : {};
  const { data } = await callTool(client, s, "list_actions", filter, ListActionsOutput);
  const types: ParamTypes = {};
  for (const a of data.actions.filter((x) => x.name === action)) {
    for (const [name, def] of Object.entries((a.params ?? {}) as Record<string, { type?: string }>)) {
      types[name] = types[name] === undefined || types[name] === def.type ? def.type : undefined;
    }
  }
  return types;
}

interface Confirmer {
  /** Whether the CLI itself declined, having no terminal to ask on and no --yes. */
  refusedUnasked: boolean;
}

/** Answers the manager's confirmation request: --yes, else y/N on the terminal, else a refusal. */
function answerConfirmations(client: Client, yes: boolean): Confirmer {
  const state: Confirmer = { refusedUnasked: false };
  client.setRequestHandler(ElicitRequestSchema, async (req): Promise<ElicitResult> => {
    if (yes) return { action: "accept", content: { confirm: true } };
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      state.refusedUnasked = true;
      return { action: "decline" };
    }
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const answer = await rl.question(`${cell(req.params.message)} [y/N] `);
      return /^y(es)?$/i.test(answer.trim()) ? { action: "accept", content: { confirm: true } } : { action: "decline" };
    } finally {
      rl.close();
    }
  });
  return state;
}

/** A progress bar on stderr, redrawn in place; nothing when stderr is not a terminal. */
function progressBar(enabled: boolean) {
  let shown = false;
  return {
    show(done: number, total: number, message: string) {
      if (!enabled) return;
      process.stderr.write(`\r\x1b[2K${progressLine(done, total, message, process.stderr.columns ?? 80)}`);
      shown = true;
    },
    clear() {
      if (shown) process.stderr.write("\r\x1b[2K");
      shown = false;
    },
  };
}

const POLL_MS = 1000;

export function runCommand(): Command {
  return operatorCommand("run", "run an action on workers as a job (exit 0 when every invocation succeeded, 1 otherwise)", async (cmd, [action, ...pairs]) => {
    const o = loadConfig(
      z.object({
        ...connectionFields,
        on: z.string().min(1),
        yes: z.boolean().optional(),
        json: z.boolean().optional(),
        maxConcurrency: z.string().optional(),
        maxErrors: z.string().optional(),
        actionTimeout: z.string().optional(),
      }),
      cmd,
    );
    const target = parseTarget(o.on);
    if (typeof target === "string") throw new OperatorExit(EXIT.usage, target);
    const client = await openClient(o, { elicitation: { form: {} } });
    const confirmer = answerConfirmations(client, o.yes === true);
    const args = parseArguments(pairs, pairs.length > 0 ? await paramTypes(client, o, action!, target) : {});
    if (typeof args === "string") throw new OperatorExit(EXIT.usage, args);
    const limit = (v: string | undefined) => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : v);
    const input = {
      action,
      arguments: args,
      target,
      ...(o.maxConcurrency !== undefined ? { max_concurrency: limit(o.maxConcurrency) } : {}),
      ...(o.maxErrors !== undefined ? { max_errors: limit(o.maxErrors) } : {}),
      ...(o.actionTimeout !== undefined ? { timeout: o.actionTimeout } : {}),
    };
    const bar = progressBar(process.stderr.isTTY === true && !o.json);
    let answer;
    try {
      answer = await callTool(client, o, "run_action", input, RunActionOutput, {
        // The user may take the whole confirmation time to answer; then the tool waits for the job.
        wait: CONFIRMATION_TTL_MS + RUN_WAIT_MS + o.timeout,
        resetTimeoutOnProgress: true,
        onprogress: (p) => bar.show(p.progress, p.total ?? 0, p.message ?? ""),
      });
    } catch (err) {
      bar.clear();
      if (err instanceof OperatorExit && confirmer.refusedUnasked) {
        throw new OperatorExit(EXIT.usage, `${action} is destructive: not confirmed, as there is no terminal to ask on; pass --yes to confirm (nothing ran)`);
      }
      throw err;
    }
    if (answer.data.confirmation) {
      // A manager that could not ask through elicitation: the plan and a token, confirmed here by --yes only.
      if (!o.yes) throw new OperatorExit(EXIT.usage, `${action} is destructive: pass --yes to confirm (nothing ran)`);
      answer = await callTool(client, o, "run_action", { ...input, confirm: answer.data.confirmation.token }, RunActionOutput, { wait: RUN_WAIT_MS + o.timeout });
    }
    const started = answer.data.job;
    if (!started) throw new OperatorExit(EXIT.failed, "run_action answered without a job");
    let job = await wholeJob(client, o, started.id);
    // run_action answers after 20 s at most; a longer job is followed here until it ends.
    const endBy = Date.now() + (Math.ceil(job.job.targets / Math.max(1, job.job.maxConcurrency)) + 1) * (job.job.timeoutMs + 10_000);
    while (job.job.status === "running" && Date.now() < endBy) {
      const { counts, targets } = job.job;
      bar.show(targets - (counts.pending ?? 0) - (counts.running ?? 0), targets, `job ${job.job.id} running`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      job = await wholeJob(client, o, started.id);
    }
    bar.clear();
    await client.close();
    await out(o.json ? JSON.stringify(job.raw, null, 2) : jobView(job.job, job.invocations, styleFor(process.stdout)));
    return jobExit(job.job);
  })
    .argument("<action>", "an action from list_actions (e.g. processes, disk_usage)")
    .argument("[key=value...]", "the action's arguments")
    .addOption(new Option("--on <target>", "worker id, id,id,..., key=value (a label), or all").makeOptionMandatory())
    .addOption(new Option("--yes", "confirm a destructive action without asking"))
    .addOption(new Option("--max-concurrency <n>", 'invocations at once (default 10), or "N%"'))
    .addOption(new Option("--max-errors <n>", 'failures before the rest are not started (default 0), or "N%"'))
    .addOption(new Option("--action-timeout <duration>", "each invocation's time limit (at most the action's own)"))
    .addOption(new Option("--json", "print the job and its invocations as JSON, for scripts"));
}
