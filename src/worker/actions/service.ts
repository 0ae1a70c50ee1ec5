import { errorMessage } from "../../errors.js";
import type { Logger } from "../../log.js";
import {
  CancelParams,
  ListParams,
  RunParams,
  type Arguments,
  type CatalogEntry,
  type ListResult,
  type RunResult,
  type RunStatus,
} from "../../protocol/actions.js";
import { checkArguments, type ArgumentValue } from "../../protocol/arguments.js";
import type { RequestContext } from "../link.js";
import { BUILTINS, type Builtin } from "./builtins/index.js";
import { buildCatalogue, listPage, type ActionSource, type Catalogue } from "./catalogue.js";
import { ActionsDir } from "./catalogue-dir.js";
import { renderArgv } from "./definition.js";
import { OutputCapture } from "./output-capture.js";
import { OutputPacer, type PacedOutput } from "./output-pacer.js";
import { fitResult } from "./result-fit.js";
import { KILL_GRACE_MS, runCommand } from "./runner.js";

/** What a source of MCP tools on this host (mcp-host.ts) offers the service. */
export interface McpSource {
  entries(): CatalogEntry[];
  run(
    action: string,
    args: Arguments,
    ctx: { signal: AbortSignal; timeoutMs: number },
  ): Promise<{ status: RunStatus; text: string; structured?: Record<string, unknown>; error?: string }>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ActionServiceOptions {
  /** The dir of command action files; undefined: none. */
  actionsDir?: string;
  /** The built-in diagnostics; false turns them off. */
  diagnostics?: boolean;
  builtins?: readonly Builtin[];
  mcp?: McpSource;
  /** Invocations running at once on this host; beyond it a run is refused `busy`. */
  maxActions?: number;
  log: Logger;
  /** Called when the catalogue's hash changed (the next heartbeat carries it). */
  onChange?: (hash: string | undefined) => void;
}

export const DEFAULT_MAX_ACTIONS = 4;

/** A built-in or an MCP call still running this long after it was told to stop is left behind. */
const ABANDON_AFTER_MS = 1000;
/** How much later than a built-in's or an MCP call's own timeout the service stops it itself. */
const OWN_TIMEOUT_FIRST_MS = 250;

interface Invocation {
  action: string;
  controller: AbortController;
  done: Promise<unknown>;
}

/** A refusal: its code becomes the response's error code (link.ts); the manager reports the code. */
function refusal(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * The worker's half of acting on the fleet: one catalogue from the built-in diagnostics, the command actions of
 * the actions dir and the tools of the host's MCP servers, and the three methods the manager may call on it. It
 * refuses anything not in the catalogue, whoever asks, checks arguments again whatever the manager checked, and
 * kills what a session started when the session ends.
 */
export class ActionService {
  private catalogue: Catalogue;
  private readonly dir: ActionsDir | null;
  private readonly builtins: readonly Builtin[];
  private readonly running = new Map<string, Invocation>();
  private readonly pacers = new Map<AbortSignal, OutputPacer>();
  private readonly maxActions: number;
  private readonly log: Logger;
  private stopped = false;

  constructor(private readonly options: ActionServiceOptions) {
    this.log = options.log;
    this.maxActions = options.maxActions ?? DEFAULT_MAX_ACTIONS;
    this.builtins = options.diagnostics === false ? [] : (options.builtins ?? BUILTINS);
    this.dir = options.actionsDir ? new ActionsDir({ dir: options.actionsDir, log: options.log }) : null;
    this.dir?.on("change", () => this.refresh());
    this.catalogue = this.build();
  }

  /**
   * Resolves once the actions dir has been read. The MCP servers start meanwhile (each is run once to list its
   * tools, which may take seconds): their tools join the catalogue when they have, and the next heartbeat says so.
   */
  async start(): Promise<void> {
    await this.dir?.start();
    this.refresh();
    const mcp = this.options.mcp;
    if (!mcp) return;
    void mcp.start().then(
      () => this.refresh(),
      (err: unknown) => this.log.error({ err: errorMessage(err) }, "MCP servers could not be started; their tools are not offered"),
    );
  }

  /** The catalogue's hash for hello and heartbeats; undefined while it is empty. */
  hash(): string | undefined {
    return this.catalogue.entries.length > 0 ? this.catalogue.hash : undefined;
  }

  entries(): readonly CatalogEntry[] {
    return this.catalogue.entries;
  }

  /** Re-reads the actions dir (SIGHUP). */
  reload(): Promise<void> {
    return this.dir?.reload() ?? Promise.resolve();
  }

  /** Builds the catalogue again from its sources; the MCP host calls this when its tools changed. */
  refresh(): void {
    const before = this.hash();
    this.catalogue = this.build();
    const after = this.hash();
    if (after === before) return;
    this.log.info({ catalog: after ?? null, actions: this.catalogue.entries.length }, "action catalogue changed");
    this.options.onChange?.(after);
  }

  /** Answers actions.list, actions.run and actions.cancel. */
  async handle(method: string, params: unknown, ctx: RequestContext): Promise<unknown> {
    switch (method) {
      case "actions.list":
        return this.list(params);
      case "actions.run":
        return this.run(params, ctx);
      case "actions.cancel":
        return this.cancel(params);
      default:
        throw refusal("unknown_method", `unknown method ${method.slice(0, 64)}`);
    }
  }

  /** Cancels every invocation and waits (a bounded time) for them to end; starts nothing after. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.dir?.stop();
    for (const inv of this.running.values()) inv.controller.abort();
    const all = Promise.allSettled([...this.running.values()].map((i) => i.done));
    await Promise.race([all, new Promise((r) => setTimeout(r, KILL_GRACE_MS + 1000).unref())]);
    await this.options.mcp?.stop().catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, "MCP servers did not stop cleanly"));
  }

  private build(): Catalogue {
    const sources: ActionSource[] = [
      ...this.builtins.map((builtin): ActionSource => ({ kind: "builtin", entry: builtin.entry, builtin })),
      ...(this.dir?.list() ?? []).map((action): ActionSource => ({ kind: "command", entry: action.entry, action })),
      ...(this.options.mcp?.entries() ?? []).map((entry): ActionSource => ({ kind: "mcp", entry })),
    ];
    return buildCatalogue(sources, this.log);
  }

  private list(params: unknown): ListResult {
    const parsed = ListParams.safeParse(params ?? {});
    if (!parsed.success) throw refusal("invalid_params", "actions.list takes {cursor?}");
    return listPage(this.catalogue, parsed.data.cursor);
  }

  private cancel(params: unknown): { found: boolean } {
    const parsed = CancelParams.safeParse(params);
    if (!parsed.success) throw refusal("invalid_params", "actions.cancel takes {invocation}");
    const inv = this.running.get(parsed.data.invocation);
    inv?.controller.abort();
    return { found: inv !== undefined };
  }

  private async run(raw: unknown, ctx: RequestContext): Promise<RunResult> {
    const parsed = RunParams.safeParse(raw);
    if (!parsed.success) throw refusal("invalid_params", "actions.run takes {invocation, action, arguments, timeoutMs}");
    const params = parsed.data;
    const source = this.catalogue.byName.get(params.action);
    if (!source) throw refusal("unknown_action", `this host does not define ${params.action}`);
    if (this.running.has(params.invocation)) throw refusal("duplicate_invocation", `invocation ${params.invocation} is already running`);
    if (this.stopped || ctx.signal.aborted) throw refusal("busy", "the agent is stopping");
    if (this.running.size >= this.maxActions) throw refusal("busy", `${this.running.size} invocations running, at most ${this.maxActions}`);
    const same = [...this.running.values()].filter((i) => i.action === params.action).length;
    if (same >= source.entry.concurrency) throw refusal("busy", `${same} invocations of ${params.action} running, at most ${source.entry.concurrency}`);
    let values: Record<string, ArgumentValue> = {};
    if (source.kind !== "mcp") {
      const checked = checkArguments(source.entry.params ?? {}, params.arguments);
      if (!checked.ok) throw refusal("invalid_arguments", `parameter ${checked.param}: ${checked.message}`);
      values = checked.values;
    }

    const timeoutMs = Math.min(params.timeoutMs, source.entry.timeoutMs);
    // The host's own record of what ran on it, whoever asked.
    this.log.info({ invocation: params.invocation, action: params.action, kind: source.kind, arguments: params.arguments, timeoutMs }, "action started");
    const controller = new AbortController();
    const onSessionEnd = () => controller.abort();
    ctx.signal.addEventListener("abort", onSessionEnd, { once: true });
    const output = this.pacerFor(ctx.signal).open(params.invocation, (chunk, bytes) => ctx.progress({ progress: bytes, output: chunk }));
    const work = (async () => {
      const result = await this.execute(source, values, params.arguments, timeoutMs, controller.signal, output);
      // The answer never overtakes the invocation's own output.
      await output.drain();
      return result;
    })();
    this.running.set(params.invocation, { action: params.action, controller, done: work });
    try {
      const result = await work;
      this.log.info(
        { invocation: params.invocation, action: params.action, status: result.status, exitCode: result.exitCode, durationMs: result.durationMs, error: result.error },
        "action ended",
      );
      return fitResult(result);
    } finally {
      this.running.delete(params.invocation);
      ctx.signal.removeEventListener("abort", onSessionEnd);
    }
  }

  private execute(
    source: ActionSource,
    values: Record<string, ArgumentValue>,
    args: Arguments,
    timeoutMs: number,
    signal: AbortSignal,
    output: PacedOutput,
  ): Promise<RunResult> {
    switch (source.kind) {
      case "command":
        return runCommand({ argv: renderArgv(source.action.argv, values), timeoutMs, signal, onOutput: (s, t) => output.write(s, t) });
      case "builtin":
        return this.callWithDeadline(timeoutMs, signal, output, async (ctx) => ({ structured: await source.builtin.run(values, ctx) }));
      case "mcp": {
        const mcp = this.options.mcp!;
        return this.callWithDeadline(timeoutMs, signal, output, async (ctx) => {
          const r = await mcp.run(source.entry.name, args, ctx);
          return { status: r.status, text: r.text, structured: r.structured, error: r.error };
        });
      }
    }
  }

  /**
   * A built-in or an MCP tool call, under the invocation's timeout and cancellation. It is told to stop through
   * its signal; one that does not is left behind after a second, so the invocation still ends on time.
   */
  private async callWithDeadline(
    timeoutMs: number,
    signal: AbortSignal,
    output: PacedOutput,
    call: (ctx: { signal: AbortSignal; timeoutMs: number }) => Promise<{ status?: RunStatus; text?: string; structured?: Record<string, unknown>; error?: string }>,
  ): Promise<RunResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const inner = new AbortController();
    let ending: "timed_out" | "cancelled" | null = null;
    const stop = (why: "timed_out" | "cancelled") => {
      ending ??= why;
      inner.abort();
    };
    // The call keeps its own timeout, and it comes first: an MCP host that times a call out also stops the server
    // it hung in, which a plain abort (a cancel) does not. This one is the backstop for a call that ignores it.
    const timer = setTimeout(() => stop("timed_out"), timeoutMs + OWN_TIMEOUT_FIRST_MS);
    const onAbort = () => stop("cancelled");
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    const capture = new OutputCapture((s, t) => output.write(s, t));
    let status: RunStatus;
    let structured: Record<string, unknown> | undefined;
    let error: string | undefined;
    try {
      const abandoned = new Promise<"abandoned">((resolve) =>
        inner.signal.addEventListener("abort", () => setTimeout(() => resolve("abandoned"), ABANDON_AFTER_MS), { once: true }),
      );
      const outcome = await Promise.race([call({ signal: inner.signal, timeoutMs }), abandoned]);
      if (outcome === "abandoned" || ending) {
        status = ending ?? "cancelled";
      } else {
        status = outcome.status ?? "succeeded";
        structured = outcome.structured;
        error = outcome.error;
        if (outcome.text) capture.write("stdout", Buffer.from(outcome.text, "utf8"));
      }
    } catch (err) {
      status = ending ?? "failed";
      if (!ending) {
        // A diagnostic says why it could not answer (UNAVAILABLE, EACCES, ...); anything else is a failure of ours.
        const code = (err as { code?: unknown }).code;
        error = typeof code === "string" && /^[A-Z][A-Z0-9_]{0,31}$/.test(code) ? code : "ACTION_FAILED";
        capture.write("stderr", Buffer.from(errorMessage(err), "utf8"));
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
    const streams = capture.finish();
    return {
      status,
      exitCode: null,
      signal: null,
      startedAt: startedAt.toISOString(),
      endedAt: new Date().toISOString(),
      durationMs: Math.max(0, Math.round(performance.now() - t0)),
      stdout: streams.stdout,
      stderr: streams.stderr,
      ...(structured ? { structured } : {}),
      ...(error ? { error } : {}),
    };
  }

  /** One pacer per session: its output frames share the session's budget. */
  private pacerFor(session: AbortSignal): OutputPacer {
    let pacer = this.pacers.get(session);
    if (!pacer) {
      const created = new OutputPacer();
      pacer = created;
      this.pacers.set(session, created);
      session.addEventListener(
        "abort",
        () => {
          created.close();
          this.pacers.delete(session);
        },
        { once: true },
      );
    }
    return pacer;
  }
}
