import { Command } from "commander";
import { errorMessage, isFleetError } from "../errors.js";
import { addConnectionFlags, OperatorExit } from "./operator-connection.js";
import { EXIT } from "./operator-views.js";

/** How long an exit waits for stdout to take what is queued for it (a reader that stopped reading). */
const DRAIN_MS = 5000;

/**
 * Writes `text` and a newline to stdout, resolving once it is handed to the system: process.exit drops what is
 * still queued. Pipes and terminals take writes at once on Linux; a full pipe is waited for, within a bound.
 */
export async function out(text: string): Promise<void> {
  if (process.stdout.write(`${text}\n`)) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, DRAIN_MS);
    process.stdout.once("drain", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The exit code an operator command's error means, said on stderr in one line. */
export function exitFor(err: unknown): number {
  if (err instanceof OperatorExit) {
    if (err.message) console.error(`mcp-fleet: ${err.message}`);
    return err.exitCode;
  }
  // Settings the config loader or the TLS loader refused.
  if (isFleetError(err, "E_CONFIG") || isFleetError(err, "E_CERT")) {
    console.error(`mcp-fleet: ${err.message}`);
    return EXIT.usage;
  }
  console.error(`mcp-fleet: ${errorMessage(err)}`);
  return EXIT.failed;
}

/**
 * A command that speaks MCP to a daemon manager: the connection flags, and an action whose result is the exit
 * code. It exits when done: the SDK client's stream may keep the event loop alive a while after closing.
 */
export function operatorCommand(name: string, description: string, action: (cmd: Command, args: string[]) => Promise<number>): Command {
  const cmd = new Command(name).description(description);
  addConnectionFlags(cmd);
  cmd.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Command;
    let code: number;
    try {
      code = await action(self, self.processedArgs.flat() as string[]);
    } catch (err) {
      code = exitFor(err);
    }
    process.exit(code);
  });
  return cmd;
}

/** Usage errors (an unknown flag, a missing argument) of the operator commands exit 64, not 2: see EXIT. */
export function usageExits(cmd: Command): void {
  for (const c of [cmd, ...cmd.commands]) {
    c.exitOverride((err) => {
      throw Object.assign(err, { exitCode: err.exitCode === 0 ? 0 : EXIT.usage });
    });
  }
}
