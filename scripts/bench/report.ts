/** The targets at N = 10,000 (issues 6 and 15), and the markdown table `npm run bench` prints. */
export const TARGETS = {
  cpuRatio: 1.3,
  memoryRatio: 1.2,
  killedMs: 100,
  frozenOverBoundMs: 500,
  stormS: 20,
  allStatusP50Ms: 50,
  listWorkersP50Ms: 50,
  /** Every tool's text answer with default arguments (Claude Code moves a longer one into a file). */
  answerChars: 50_000,
  /** A no-op action fanned out to the whole fleet with max_concurrency 1,000: every result in (issue 16). */
  fanOutS: 10,
  /** The manager's RSS growth meanwhile, with 1 KiB of output from each worker. */
  fanOutRssMB: 64,
  /** One GET /metrics at the target size, request to last byte. */
  scrapeMs: 1000,
  /** The size the targets are set for. */
  atN: 10_000,
};

/** One tool's text answer: characters, and tokens estimated at four characters each. */
export interface AnswerSize {
  chars: number;
  tokens: number;
}

interface Latency {
  calls: number;
  p50: number;
  p99: number;
  bytes: number;
}
/** GET /metrics, one after another: wall times, the body, and the manager's CPU per scrape. */
export interface Scrape {
  calls: number;
  p50: number;
  max: number;
  bytes: number;
  samples: number;
  cpuMs: number;
}

interface Storm {
  seconds: number;
  /** Seconds after the restarted manager listened at which 50, 90 and 99% were back. */
  curve: Record<string, number>;
  /** CPU seconds the manager spent until all were back. */
  managerCpuS: number;
  /** CPU seconds the simulators spent meanwhile, on the same two cores. */
  simulatorsCpuS: number;
  /** CPU seconds the hypervisor took meanwhile (see stealSeconds in procs.ts). */
  stealS: number;
  /** Failed connection attempts during the storm, by error code. */
  failures: Record<string, number>;
  /** The manager's warnings during the storm, by kind. */
  warnings: Record<string, number>;
  resumed: number;
  /** TLS handshakes the simulators finished in the storm: more than the sessions is work the server did twice. */
  handshakes: number;
  sessions: number;
  healthy: number;
}

interface BaselineStorm {
  seconds: number;
  curve: Record<string, number>;
  serverCpuS: number;
  simulatorsCpuS: number;
  stealS: number;
  failures: Record<string, number>;
  resumed: number;
  handshakes: number;
}

/** One server's steady heartbeating, measured over a window (the manager's and the baseline's over the same one). */
export interface SteadyState {
  /** Epoch ms when the window began. */
  windowAt: number;
  cpuPerHeartbeatUs: number;
  /** The same in each 10 s part of the window. */
  partsUs: number[];
  /** Median RSS over the window. */
  rss: number;
  heartbeats: number;
  cpuPercent: number;
  threadsUsPerHeartbeat: Record<string, number>;
  /** CPU seconds the hypervisor took during the window. */
  stealS: number;
}

/** run_action of the simulators' no-op action on every worker (max_concurrency 1,000), to the last result. */
export interface FanOut {
  targets: number;
  seconds: number;
  succeeded: number;
  /** How the others ended, by status. */
  counts: Record<string, number>;
  managerCpuS: number;
  /** The manager's RSS at its highest while the job ran, less its RSS just before. */
  rssGrowth: number;
  /** The manager's RSS after a full collection once the job had ended, less its RSS just before the job. */
  rssRetained: number;
  /** Workers the manager marked unhealthy while the job ran. */
  unhealthy: number;
  progressNotifications: number;
}

/** N hosts joining at once with one token (scripts/bench/joins.ts). */
export interface JoinResult {
  n: number;
  /** `host joined` lines the manager logged, and workers it counted healthy at the end. */
  enrolled: number;
  healthy: number;
  /** Seconds from the start until the manager's last `host joined`, the last welcome, all healthy. */
  enrolledS: number;
  welcomedS: number;
  healthyS: number;
  /** The manager's CPU seconds until the last enrollment, and per enrollment (ms). */
  managerCpuS: number;
  cpuPerEnrollmentMs: number;
  /** The same up to the last welcome, per host: the join and the first mutual-TLS session together. */
  cpuPerJoinAndSessionMs: number;
  /** One host's first dial to its certificate in hand. */
  joinP50Ms: number;
  joinP99Ms: number;
  /** Join exchanges tried (more than n: retries). */
  attempts: number;
  failures: Record<string, number>;
  refused: Record<string, number>;
}

export interface SizeResult {
  n: number;
  baseline: SteadyState & {
    idleRss: number;
    rssPerWorker: number;
    openMs: number;
    /** The bare server restarted with its ticket keys: every connection back, resumed. */
    stormResumed: BaselineStorm;
    /** The bare server restarted with new ticket keys: every connection back, each with a full handshake. */
    stormFull: BaselineStorm;
  };
  manager: SteadyState & {
    idleRss: number;
    rssPerWorker: number;
    rssAfterStorms: number;
    openMs: number;
    intervalMs: number;
    boundMs: number;
    paces: Array<{ to: number; connected: number }>;
    listWorkers: Latency;
    allStatus: Latency;
    /** The same two over MCP over HTTP, from the manager restarted with --daemon (older results have none). */
    http?: { listWorkers: Latency; allStatus: Latency };
    /** Each tool's answer with default arguments, by tool name. */
    answers: Record<string, AnswerSize>;
    killedMs: number[];
    /** CPU milliseconds the hypervisor took around each killed sample, in the order of `killedMs`. */
    killedStealMs: number[];
    frozenMs: number[];
    /** CPU seconds the hypervisor took while detection was measured. */
    detectionStealS: number;
    stormResumed: Storm;
    stormFull: Storm;
    fanOut: FanOut;
    /** Absent from results written before the manager had metrics. */
    scrape?: Scrape;
  };
}

const scrape = (s: Scrape) =>
  `${ms(s.p50)} / ${ms(s.max)}; ${(s.bytes / 1024).toFixed(0)} KB, ${s.samples.toLocaleString("en")} samples; ${ms(s.cpuMs)} (${s.calls} scrapes)`;
const kb = (b: number) => `${(b / 1024).toFixed(1)} KB`;
const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;

/** "met", or by how much the figure misses its target. */
function verdict(value: number, target: number, unit: string, atTargetSize: boolean): string {
  if (!atTargetSize) return "";
  if (value <= target) return "met";
  const over = value - target;
  return `**missed** by ${unit === "×" ? over.toFixed(2) + "×" : unit === "s" ? over.toFixed(1) + " s" : Math.round(over) + " ms"} (${((value / target - 1) * 100).toFixed(0)}%)`;
}

export function renderTable(results: SizeResult[], machine: Record<string, unknown>): string {
  const m = machine as { cpu: string; cores: number; memoryGiB: number; kernel: string; node: string; openssl: string; openFileLimit: { hard: number } };
  const largest = results.at(-1)!;
  const atTarget = (r: SizeResult) => r === largest && r.n >= TARGETS.atN;
  const head = `| | ${results.map((r) => `N = ${r.n.toLocaleString("en")}`).join(" | ")} | target at N = ${TARGETS.atN.toLocaleString("en")} | |`;
  const sep = `|---|${results.map(() => "---").join("|")}|---|---|`;
  const rows: string[] = [];
  const row = (label: string, cell: (r: SizeResult) => string, target: string, check: (r: SizeResult) => string) => {
    rows.push(`| ${label} | ${results.map(cell).join(" | ")} | ${target} | ${check(largest)} |`);
  };
  const cpuRatio = (r: SizeResult) => r.manager.cpuPerHeartbeatUs / r.baseline.cpuPerHeartbeatUs;
  const memRatio = (r: SizeResult) => r.manager.rssPerWorker / r.baseline.rssPerWorker;
  row("heartbeat interval (paced, budget 2,000/s)", (r) => ms(r.manager.intervalMs), "", () => "");
  const spread = (parts: number[]) => (parts.length > 1 ? `; 10 s parts ${Math.min(...parts)}–${Math.max(...parts)}` : "");
  row("manager CPU per heartbeat", (r) => `${r.manager.cpuPerHeartbeatUs.toFixed(1)} µs (${r.manager.cpuPercent.toFixed(0)}% of a core${spread(r.manager.partsUs)})`, "", () => "");
  row("baseline CPU per heartbeat", (r) => `${r.baseline.cpuPerHeartbeatUs.toFixed(1)} µs (${r.baseline.cpuPercent.toFixed(0)}% of a core${spread(r.baseline.partsUs)})`, "", () => "");
  const threads = (t: Record<string, number>) =>
    Object.entries(t)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([name, us]) => `${name} ${us}`)
      .join(", ");
  row("… by thread, µs per heartbeat: manager", (r) => threads(r.manager.threadsUsPerHeartbeat), "", () => "");
  row("… by thread, µs per heartbeat: baseline", (r) => threads(r.baseline.threadsUsPerHeartbeat), "", () => "");
  // Both were measured over the same window, so their 10 s parts pair up.
  const partRatios = (r: SizeResult) => r.manager.partsUs.map((us, i) => us / (r.baseline.partsUs[i] ?? NaN)).filter(Number.isFinite);
  const ratioSpread = (r: SizeResult) => {
    const q = partRatios(r);
    return q.length > 1 ? ` (10 s parts ${Math.min(...q).toFixed(2)}–${Math.max(...q).toFixed(2)}×)` : "";
  };
  row("CPU ratio manager / baseline", (r) => `${cpuRatio(r).toFixed(2)}×${ratioSpread(r)}`, `≤ ${TARGETS.cpuRatio}×`, (r) => verdict(cpuRatio(r), TARGETS.cpuRatio, "×", atTarget(r)));
  row("manager RSS per worker", (r) => kb(r.manager.rssPerWorker), "", () => "");
  row("baseline RSS per connection", (r) => kb(r.baseline.rssPerWorker), "", () => "");
  row("memory ratio manager / baseline", (r) => `${memRatio(r).toFixed(2)}×`, `≤ ${TARGETS.memoryRatio}×`, (r) => verdict(memRatio(r), TARGETS.memoryRatio, "×", atTarget(r)));
  row("killed worker → unhealthy (median / max; steal around the slowest)", (r) =>
    `${ms(percentile(r.manager.killedMs, 50))} / ${ms(Math.max(...r.manager.killedMs))} (${r.manager.killedStealMs.at(-1) ?? 0} ms)`, `≤ ${TARGETS.killedMs} ms`, (r) =>
    verdict(Math.max(...r.manager.killedMs), TARGETS.killedMs, "ms", atTarget(r)),
  );
  row("frozen worker → unhealthy, after its last heartbeat (max)", (r) => `${(Math.max(...r.manager.frozenMs) / 1000).toFixed(2)} s (bound ${r.manager.boundMs / 1000} s)`, "≤ bound + 0.5 s", (r) =>
    verdict(Math.max(...r.manager.frozenMs) - r.manager.boundMs, TARGETS.frozenOverBoundMs, "ms", atTarget(r)),
  );
  row("reconnect storm, TLS sessions resumed", (r) => storm(r.manager.stormResumed), `≤ ${TARGETS.stormS} s`, (r) =>
    verdict(r.manager.stormResumed.seconds, TARGETS.stormS, "s", atTarget(r)),
  );
  row("… the bare baseline server restarted with its ticket keys (resumed)", (r) => baselineStorm(r.baseline.stormResumed), "", () => "");
  row("reconnect storm, full handshakes", (r) => storm(r.manager.stormFull), `≤ ${TARGETS.stormS} s`, (r) =>
    verdict(r.manager.stormFull.seconds, TARGETS.stormS, "s", atTarget(r)),
  );
  row("… the bare baseline server restarted with new ticket keys (full handshakes)", (r) => baselineStorm(r.baseline.stormFull), "", () => "");
  row("… fastest storm this machine allows, from the bare storms' CPU: resumed, full", (r) =>
    `${stormFloorS(r.baseline.stormResumed, m.cores).toFixed(1)} s, ${stormFloorS(r.baseline.stormFull, m.cores).toFixed(1)} s`, `≤ ${TARGETS.stormS} s`, (r) =>
    floorVerdict([stormFloorS(r.baseline.stormResumed, m.cores), stormFloorS(r.baseline.stormFull, m.cores)], atTarget(r)),
  );
  row("`get_all_workers_status` (cached, limit 100) p50 / p99", (r) => `${ms(r.manager.allStatus.p50)} / ${ms(r.manager.allStatus.p99)}`, `p50 < ${TARGETS.allStatusP50Ms} ms`, (r) =>
    verdict(r.manager.allStatus.p50, TARGETS.allStatusP50Ms, "ms", atTarget(r)),
  );
  row("`list_workers` (default limit 100) p50 / p99", (r) => `${ms(r.manager.listWorkers.p50)} / ${ms(r.manager.listWorkers.p99)} (${r.manager.listWorkers.calls} calls)`, `p50 ≤ ${TARGETS.listWorkersP50Ms} ms`, (r) =>
    verdict(r.manager.listWorkers.p50, TARGETS.listWorkersP50Ms, "ms", atTarget(r)),
  );
  row("`GET /metrics` p50 / max; body; manager CPU per scrape", (r) => (r.manager.scrape ? scrape(r.manager.scrape) : "–"), `≤ ${TARGETS.scrapeMs} ms`, (r) =>
    r.manager.scrape ? verdict(r.manager.scrape.max, TARGETS.scrapeMs, "ms", atTarget(r)) : "",
  );
  const overHttp = (r: SizeResult, which: "listWorkers" | "allStatus") => {
    const l = r.manager.http?.[which];
    return l ? `${ms(l.p50)} / ${ms(l.p99)} (${l.calls} calls)` : "–";
  };
  row("… the same two over MCP over HTTP (`--daemon`, operator certificate): `get_all_workers_status`, p50 / p99", (r) => overHttp(r, "allStatus"), "", () => "");
  row("… `list_workers` over MCP over HTTP, p50 / p99", (r) => overHttp(r, "listWorkers"), "", () => "");
  for (const tool of Object.keys(largest.manager.answers)) {
    const size = (r: SizeResult) => r.manager.answers[tool];
    row(`\`${tool}\` answer, default arguments`, (r) => (size(r) ? `${size(r)!.chars.toLocaleString("en")} chars (~${size(r)!.tokens.toLocaleString("en")} tokens)` : "–"), `< ${TARGETS.answerChars.toLocaleString("en")} chars`, (r) =>
      atTarget(r) ? (size(r)!.chars < TARGETS.answerChars ? "met" : `**missed** by ${(size(r)!.chars - TARGETS.answerChars).toLocaleString("en")} chars`) : "",
    );
  }
  row("no-op action on every worker (max_concurrency 1,000): all results in", (r) => fanOut(r.manager.fanOut), `≤ ${TARGETS.fanOutS} s`, (r) =>
    verdict(r.manager.fanOut.seconds, TARGETS.fanOutS, "s", atTarget(r)),
  );
  row("… manager RSS growth meanwhile (1 KiB of output each): peak; after a collection", (r) => `${mb(r.manager.fanOut.rssGrowth)}; ${mb(r.manager.fanOut.rssRetained)}`, `≤ ${TARGETS.fanOutRssMB} MB`, (r) =>
    atTarget(r) ? (r.manager.fanOut.rssGrowth <= TARGETS.fanOutRssMB * 2 ** 20 ? "met" : `**missed** by ${mb(r.manager.fanOut.rssGrowth - TARGETS.fanOutRssMB * 2 ** 20)}`) : "",
  );
  row("first connect of the whole fleet (48 handshakes in flight per simulator)", (r) => `${(r.manager.openMs / 1000).toFixed(1)} s`, "", () => "");
  row("CPU taken by the hypervisor (steal): steady window / detection / storms resumed, full", (r) =>
    `${r.manager.stealS.toFixed(1)} / ${r.manager.detectionStealS.toFixed(1)} / ${r.manager.stormResumed.stealS.toFixed(1)}, ${r.manager.stormFull.stealS.toFixed(1)} s`, "", () => "",
  );
  row("manager RSS: idle / steady / after two storms", (r) => `${mb(r.manager.idleRss)} / ${mb(r.manager.rss)} / ${mb(r.manager.rssAfterStorms)}`, "", () => "");
  const note =
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, OpenSSL ${m.openssl}, ` +
    `open-file hard limit ${m.openFileLimit.hard}. Largest N reached: ${largest.n.toLocaleString("en")}.`;
  return [head, sep, ...rows, "", note].join("\n");
}

/** The join phase's rows: a table of its own, since it runs at its own size. */
export function renderJoinTable(j: JoinResult): string {
  const other = (r: Record<string, number>) => (Object.keys(r).length > 0 ? JSON.stringify(r) : "none");
  return [
    `| ${j.n.toLocaleString("en")} hosts joining at once (one token, approve auto, one 127.0.x.y each) | |`,
    "|---|---|",
    `| all enrolled (the manager's last \`host joined\`) | ${j.enrolledS.toFixed(1)} s (${j.enrolled.toLocaleString("en")} of ${j.n.toLocaleString("en")}) |`,
    `| all welcomed with their new certificates / all healthy | ${j.welcomedS.toFixed(1)} s / ${j.healthyS.toFixed(1)} s (${j.healthy.toLocaleString("en")} healthy) |`,
    `| manager CPU per enrollment (CPU until the last enrollment / N) | ${j.cpuPerEnrollmentMs.toFixed(1)} ms (${j.managerCpuS.toFixed(2)} s in all) |`,
    `| … with each host's first session, until the last welcome | ${j.cpuPerJoinAndSessionMs.toFixed(1)} ms per host |`,
    `| one join, first dial to certificate: p50 / p99 | ${ms(j.joinP50Ms)} / ${ms(j.joinP99Ms)} |`,
    `| join exchanges / failed attempts / refusals | ${j.attempts.toLocaleString("en")} / ${other(j.failures)} / ${other(j.refused)} |`,
  ].join("\n");
}

const storm = (s: Storm) => {
  // The manager logs a warning for each worker it marks unhealthy: during a storm, workers not back yet.
  const flagged = s.warnings["worker state changed"] ?? 0;
  return `${s.seconds.toFixed(1)} s (90% in ${s.curve.p90 ?? "?"} s; ${s.resumed.toLocaleString("en")} resumed; CPU: manager ${s.managerCpuS.toFixed(1)} s, simulators ${s.simulatorsCpuS.toFixed(1)} s${flagged > 0 ? `; ${flagged.toLocaleString("en")} marked unhealthy meanwhile` : ""})`;
};

const fanOut = (f: FanOut) =>
  `${f.seconds.toFixed(1)} s (${f.succeeded.toLocaleString("en")} of ${f.targets.toLocaleString("en")} succeeded; manager CPU ${f.managerCpuS.toFixed(1)} s; ` +
  `${f.unhealthy} marked unhealthy meanwhile; ${f.progressNotifications.toLocaleString("en")} progress notifications)`;

const baselineStorm = (s: BaselineStorm) =>
  `${s.seconds.toFixed(1)} s (90% in ${s.curve.p90 ?? "?"} s; ${s.resumed.toLocaleString("en")} resumed; CPU: server ${s.serverCpuS.toFixed(1)} s, simulators ${s.simulatorsCpuS.toFixed(1)} s)`;

/**
 * The shortest a storm of this size could be here, whatever the server: it must do at least the bare server's work,
 * whose TLS runs on one thread, and the clients' work shares the same cores. The larger of the bare server's CPU
 * and the bare storm's whole CPU (server and simulators) spread over every core.
 */
export function stormFloorS(s: BaselineStorm, cores: number): number {
  return Math.max(s.serverCpuS, (s.serverCpuS + s.simulatorsCpuS) / cores);
}

function floorVerdict(floors: number[], atTargetSize: boolean): string {
  if (!atTargetSize) return "";
  const [resumed, full] = floors.map((f) => f > TARGETS.stormS);
  if (!resumed && !full) return "both within reach";
  return `${resumed && full ? "neither storm" : resumed ? "the resumed storm is not" : "the full-handshake storm is not"} within reach of the bare transport here`;
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
