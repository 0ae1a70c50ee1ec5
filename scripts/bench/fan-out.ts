import { BenchManager } from "./manager.js";
import { cpuSeconds, epochNow, rssBytes, sleep } from "./procs.js";
import type { FanOut } from "./report.js";

interface JobAnswer {
  job: { id: string; status: string; targets: number; counts: Record<string, number> };
}

/**
 * run_action of the no-op action on every worker, as an assistant would call it (with a progress token), then
 * get_job until the job has ended. The manager's RSS is sampled meanwhile for its highest point.
 */
export async function fanOut(manager: BenchManager, n: number, say: (s: string) => void): Promise<FanOut> {
  say(`  fan-out: no-op action on all ${n} workers, max_concurrency 1000`);
  const rss0 = rssBytes(manager.pid);
  const cpu0 = cpuSeconds(manager.pid);
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(manager.pid))), 100);
  const unhealthy0 = manager.warnings["worker state changed"] ?? 0;
  let progressNotifications = 0;
  const started = epochNow();
  try {
    const first = (await manager.client.callTool(
      { name: "run_action", arguments: { action: "noop", target: { all: true }, max_concurrency: 1000 } },
      undefined,
      { timeout: 120_000, onprogress: () => progressNotifications++ },
    )) as { isError?: boolean; content: unknown; structuredContent?: unknown };
    if (first.isError) throw new Error(`run_action failed: ${JSON.stringify(first.content).slice(0, 300)}`);
    let { job } = first.structuredContent as JobAnswer;
    const deadline = started + 120_000;
    while (job.status === "running") {
      if (epochNow() > deadline) throw new Error(`the fan-out job was still running after 120 s: ${JSON.stringify(job.counts)}`);
      await sleep(100);
      job = ((await manager.tool("get_job", { job_id: job.id, limit: 1 })).result.structuredContent as unknown as JobAnswer).job;
    }
    const seconds = (epochNow() - started) / 1000;
    const rssAtEnd = rssBytes(manager.pid);
    // What the job still holds once its garbage is collected (kept outputs, tails, the job's history entry).
    process.kill(manager.pid, "SIGURG");
    await sleep(1000);
    const result = {
      targets: job.targets,
      seconds,
      succeeded: job.counts.succeeded ?? 0,
      counts: Object.fromEntries(Object.entries(job.counts).filter(([, v]) => v > 0)),
      managerCpuS: cpuSeconds(manager.pid) - cpu0,
      rssGrowth: Math.max(peak, rssAtEnd) - rss0,
      rssRetained: rssBytes(manager.pid) - rss0,
      unhealthy: (manager.warnings["worker state changed"] ?? 0) - unhealthy0,
      progressNotifications,
    };
    say(`    ${JSON.stringify(result)}`);
    return result;
  } finally {
    clearInterval(sampler);
  }
}
