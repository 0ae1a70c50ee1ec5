/**
 * Child process for logging.test.ts: writes LINES log lines through the built logger (dist/, as the shipped
 * commands run it) while a 10 ms timer counts how often its event loop got to run, reports the count on stdout,
 * logs one last line and exits. PADDING sets the size of each line.
 *
 * Plain JavaScript run by plain node, not through tsx: started through tsx with a cold compile cache, the child
 * was seen blocked on the full pipe (tsx's esbuild helper shares that stderr), which is not what is under test.
 */
import { clearInterval, setImmediate, setInterval, setTimeout } from "node:timers";
import { createLogger } from "../../dist/log.js";

const LINES = Number(process.env.LINES ?? 20_000);
const REPORT_AFTER_MS = Number(process.env.REPORT_AFTER_MS ?? 2000);
const log = createLogger({ name: "log-writer" });
let ticks = 0;
const timer = setInterval(() => ticks++, 10);
const padding = "x".repeat(Number(process.env.PADDING ?? 120));
let written = 0;
// In slices, as a busy process would: a loop that never yields would measure nothing.
const writeSome = () => {
  for (let i = 0; i < 500 && written < LINES; i++) log.info({ n: written++, padding }, "line");
  if (written < LINES) setImmediate(writeSome);
};
writeSome();
setTimeout(() => {
  clearInterval(timer);
  process.stdout.write(`${JSON.stringify({ ticks, written })}\n`, () => {
    log.info({ n: LINES }, "last line before exit");
    process.exit(0);
  });
}, REPORT_AFTER_MS);
