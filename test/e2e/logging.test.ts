import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

const WRITER = fileURLToPath(new URL("../helpers/log-writer.mjs", import.meta.url));

describe("logging to a slow reader", () => {
  it("does not stall the process while stderr is full, and loses no line, the last one before exit included", async () => {
    const LINES = 20_000; // ~4 MB of JSON: far more than a pipe holds
    const child = spawn(process.execPath, [WRITER], {
      env: { ...process.env, LINES: String(LINES), REPORT_AFTER_MS: "2000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      // The reader reads nothing of stderr until the writer has reported: the pipe fills within milliseconds.
      child.stderr.pause();
      const [report] = (await once(createInterface({ input: child.stdout }), "line", { signal: AbortSignal.timeout(20_000) })) as [string];
      const { ticks, written } = JSON.parse(report) as { ticks: number; written: number };
      assert.equal(written, LINES, "every line was handed to the logger while its reader was stuck");
      // ~200 ticks of 10 ms fit in 2 s. A writer that blocks on the full pipe (pino's synchronous mode sleeps
      // 100 ms per EAGAIN) gets almost none until the reader reads again.
      assert.ok(ticks >= 50, `the event loop ran ${ticks} times in 2 s while stderr was full`);

      const seen: number[] = [];
      const lines = createInterface({ input: child.stderr });
      lines.on("line", (l) => seen.push((JSON.parse(l) as { n: number }).n));
      child.stderr.resume();
      const exited = once(child, "exit", { signal: AbortSignal.timeout(20_000) });
      await once(lines, "close", { signal: AbortSignal.timeout(20_000) });
      const [code] = (await exited) as [number];
      assert.equal(code, 0);
      assert.equal(seen.length, LINES + 1, "every line reached the reader");
      assert.equal(seen.at(-1), LINES, "the line logged just before process.exit was written");
      assert.ok(seen.every((n, i) => n === i), "in order");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("drops what is beyond its queue, keeps the order of what it kept, and says how many it dropped", async () => {
    const LINES = 20_000;
    // ~740 bytes a line, ~14.8 MB in all: well past the 8 MB the log may hold for a reader that is not reading.
    const child = spawn(process.execPath, [WRITER], {
      env: { ...process.env, LINES: String(LINES), PADDING: "650", REPORT_AFTER_MS: "2000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      child.stderr.pause();
      const [report] = (await once(createInterface({ input: child.stdout }), "line", { signal: AbortSignal.timeout(20_000) })) as [string];
      const { ticks, written } = JSON.parse(report) as { ticks: number; written: number };
      assert.equal(written, LINES);
      assert.ok(ticks >= 50, `the event loop ran ${ticks} times in 2 s while its log was dropping lines`);

      const kept: number[] = [];
      const drops: Array<{ level: string; dropped: number }> = [];
      const order: Array<"line" | "drops"> = [];
      const lines = createInterface({ input: child.stderr });
      lines.on("line", (l) => {
        const line = JSON.parse(l) as { n?: number; level: string; dropped?: number };
        if (line.dropped !== undefined) drops.push({ level: line.level, dropped: line.dropped });
        else kept.push(line.n!);
        order.push(line.dropped !== undefined ? "drops" : "line");
      });
      child.stderr.resume();
      const exited = once(child, "exit", { signal: AbortSignal.timeout(20_000) });
      await once(lines, "close", { signal: AbortSignal.timeout(20_000) });
      assert.equal(((await exited) as [number])[0], 0);
      // The line logged just before exit is short: it may still fit behind the kept ones, or be counted as dropped.
      const last = kept.at(-1) === LINES ? kept.pop() : undefined;
      const gap = kept.findIndex((n, i) => n !== i);
      assert.ok(gap === -1, `what was kept is the first lines, in order: ${JSON.stringify(kept.slice(Math.max(0, gap - 3), gap + 3))} at ${gap}`);
      assert.ok(kept.length > 5_000 && kept.length < LINES, `some lines were kept and some dropped: ${kept.length} kept`);
      assert.equal(drops.length, 1, `one line counts the drops: ${JSON.stringify(drops)}`);
      assert.equal(drops[0]!.level, "warn");
      assert.equal(order.at(-1), "drops", "the count comes once the reader has caught up, after every kept line");
      assert.equal(kept.length + (last === undefined ? 0 : 1) + drops[0]!.dropped, LINES + 1, "every line is either written or counted as dropped");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
