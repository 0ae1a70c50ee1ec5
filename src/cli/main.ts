#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { isFleetError, errorMessage, type FleetErrorCode } from "../errors.js";
import { VERSION } from "../version.js";
import { certsCommand } from "./certs.js";
import { connectCommand } from "./connect.js";
import { eventsCommand, jobsCommand, statusCommand, workersCommand } from "./fleet-commands.js";
import { managerCommand } from "./manager.js";
import { usageExits } from "./operator-command.js";
import { EXIT } from "./operator-views.js";
import { runCommand } from "./run.js";
import { tokenCommand } from "./token.js";
import { workerCommand } from "./worker.js";

const program = new Command("mcp-fleet")
  .version(VERSION)
  .description("a fleet of worker hosts, their live health, and MCP tools to ask about them")
  .showHelpAfterError()
  .addCommand(certsCommand())
  .addCommand(tokenCommand())
  .addCommand(managerCommand())
  .addCommand(workerCommand())
  .addCommand(connectCommand());

// The operator's commands: MCP clients of a daemon manager.
const operatorCommands = [statusCommand(), workersCommand(), eventsCommand(), runCommand(), jobsCommand()];
for (const c of operatorCommands) program.addCommand(c);

// Usage errors exit 2 like every other bad input, instead of commander's own process.exit(1); the operator
// commands' exit 64, as 2 is one of their health answers.
const withSubcommands = (c: Command): Command[] => [c, ...c.commands.flatMap(withSubcommands)];
for (const c of withSubcommands(program)) c.exitOverride();
for (const c of operatorCommands) usageExits(c);

const USER_ERRORS: readonly FleetErrorCode[] = ["E_CONFIG", "E_CERT", "E_CERT_EXISTS", "E_UNKNOWN_REQUEST"];

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander already printed the message (or the help, or the version).
    process.exit(err.exitCode === 0 ? 0 : err.exitCode === EXIT.usage ? EXIT.usage : 2);
  }
  // Bad settings, refused certificate operations and unknown join requests are the user's to fix: one clear line, exit 2.
  if (isFleetError(err) && USER_ERRORS.includes(err.code)) {
    console.error(`mcp-fleet: ${err.message}`);
    process.exit(2);
  }
  console.error(`mcp-fleet: ${errorMessage(err)}`);
  process.exit(1);
}
