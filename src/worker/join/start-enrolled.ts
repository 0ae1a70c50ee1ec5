import { FleetBrowser } from "../../discovery/browser.js";
import { FleetError } from "../../errors.js";
import { WORKER_ID_PATTERN, type GoodbyeReason } from "../../protocol/messages.js";
import type { JoinString } from "../../protocol/join.js";
import { startWorker, type WorkerAgent, type WorkerOptions } from "../agent.js";
import { enrolledPaths, ensureStateDir, loadEnrolledIdentity, type EnrolledState } from "./enrolled-identity.js";
import { joinFleet } from "./joiner.js";

/**
 * The id a joining host asks for by default: its host name's first label, lower-cased, with what a DNS label may
 * not hold turned into '-' ("web_01.example" → "web-01"). A name with nothing usable left asks for "worker".
 */
export function workerIdFromHostname(name: string): string {
  const label = (name.split(".")[0] ?? "")
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, 63)
    .replace(/^-+|-+$/g, "");
  return WORKER_ID_PATTERN.test(label) ? label : "worker";
}

export type StartPlan = { action: "start" } | { action: "join"; why: string } | { action: "fail"; error: FleetError };

/**
 * What a worker with a state dir does at start. A usable identity wins over a join string (a host that joined
 * keeps its identity across restarts of a unit that still passes --join). One that expired while the host was away
 * is replaced by joining again when a join string is given; without one the worker starts and says what to do.
 */
export function startPlan(state: EnrolledState, dir: string, hasJoin: boolean): StartPlan {
  switch (state.status) {
    case "valid":
    case "not_yet_valid":
      return { action: "start" };
    case "expired":
      return hasJoin ? { action: "join", why: "expired" } : { action: "start" };
    case "unusable":
      if (hasJoin) return { action: "join", why: `unusable: ${state.reason}` };
      return {
        action: "fail",
        error: new FleetError("E_CERT", `the identity in ${dir} is not usable (${state.reason}); join again: mcp-fleet worker --join <join string> --state-dir ${dir}`),
      };
    case "none":
      if (hasJoin) return { action: "join", why: "not enrolled" };
      return {
        action: "fail",
        error: new FleetError(
          "E_CONFIG",
          `no enrolled identity in ${dir}: give a join string (--join, --join-file, MCP_FLEET_JOIN) or a certificate (--cert and --key)`,
        ),
      };
  }
}

export interface EnrolledWorkerOptions extends Omit<WorkerOptions, "tls" | "enrolled"> {
  stateDir: string;
  join: JoinString | null;
  requestedId: string;
  hostname: string;
}

export interface EnrolledWorker {
  /** Settles once joined and started (or stopped first); rejects if the identity could not be kept. */
  readonly started: Promise<void>;
  stop(why: string, goodbye?: GoodbyeReason): Promise<void>;
  reloadActions(): Promise<void>;
}

/**
 * A worker whose identity lives in its state dir: started with it, or, first, joined to the fleet with the join
 * string. Throws at once (before anything runs) when there is neither an identity nor a way to get one.
 */
export function startEnrolledWorker(o: EnrolledWorkerOptions): EnrolledWorker {
  const { stateDir: _stateDir, join: _join, requestedId: _requestedId, hostname: _hostname, ...workerOptions } = o;
  const paths = enrolledPaths(o.stateDir);
  const state = loadEnrolledIdentity(paths);
  const plan = startPlan(state, o.stateDir, o.join !== null);
  if (plan.action === "fail") throw plan.error;
  if (state.status === "expired") {
    const expiredOn = state.material.self.notAfter.toISOString();
    o.log.error(
      { stateDir: o.stateDir, notAfter: expiredOn },
      `this worker's certificate expired on ${expiredOn} while it was away; the host must join the fleet again` +
        (o.join ? ": joining again with the join string given (the old files stay until it has joined)" : ""),
    );
  } else if (plan.action === "join" && state.status === "unusable") {
    o.log.warn({ stateDir: o.stateDir, reason: state.reason }, "the identity in the state dir is not usable; joining again");
  } else if (plan.action === "start" && o.join) {
    o.log.info({ stateDir: o.stateDir }, "already enrolled: starting with the identity in the state dir; the join string is not used");
  }
  const stopping = new AbortController();
  const browser = plan.action === "join" && o.mdns && !o.manager ? new FleetBrowser({ log: o.log }) : null;
  let agent: WorkerAgent | null = null;
  const started = (async () => {
    if (plan.action === "join") {
      ensureStateDir(paths);
      browser?.start();
      const joined = await joinFleet({
        join: o.join!,
        paths,
        requestedId: o.requestedId,
        hostname: o.hostname,
        manager: o.manager,
        browser,
        log: o.log,
        signal: stopping.signal,
      }).finally(() => browser?.stop());
      if (!joined) return;
    }
    if (stopping.signal.aborted) return;
    agent = startWorker({ ...workerOptions, tls: paths, enrolled: paths });
  })();
  return {
    started,
    reloadActions: async () => agent?.reloadActions(),
    async stop(why, goodbye) {
      stopping.abort();
      await started.catch(() => {});
      if (agent) return agent.stop(why, goodbye);
      o.log.info({ reason: why }, "worker stopped before it joined the fleet");
    },
  };
}
