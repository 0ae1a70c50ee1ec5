import type { Builtin } from "./builtin.js";
import { checkTcp } from "./check-tcp.js";
import { diskUsage } from "./disk-usage.js";
import { journal } from "./journal.js";
import { listeningPorts } from "./listening-ports.js";
import { processes } from "./processes.js";
import { resolve } from "./resolve.js";
import { serviceStatus } from "./service-status.js";

export type { Builtin, BuiltinContext } from "./builtin.js";
export { DiagnosticError } from "./builtin.js";

/** The read-only diagnostics every worker offers unless started with --no-diagnostics (docs/actions.md). */
export const BUILTINS: Builtin[] = [processes, serviceStatus, journal, diskUsage, listeningPorts, checkTcp, resolve];
