import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killAll, Proc, runCli, type LogLine } from "./processes.js";

export interface CertSet {
  dir: string;
  ca: string;
  managerCert: string;
  managerKey: string;
  worker(id: string): { cert: string; key: string };
}

/** A temporary directory removed by `cleanup`, which tests register with `after`. */
export async function tempDir(prefix: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `mcp-fleet-${prefix}-`));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** A fleet CA, manager and workers made by our own `mcp-fleet certs` commands. */
export async function makeCerts(dir: string, workerIds: string[], fleet = "test"): Promise<CertSet> {
  const init = await runCli(["certs", "init", "--dir", dir, "--fleet", fleet]);
  assert.equal(init.code, 0, init.stderr);
  for (const id of workerIds) {
    const issued = await runCli(["certs", "issue", id, "--dir", dir]);
    assert.equal(issued.code, 0, issued.stderr);
  }
  return {
    dir,
    ca: join(dir, "ca.pem"),
    managerCert: join(dir, "manager.pem"),
    managerKey: join(dir, "manager-key.pem"),
    worker: (id) => ({ cert: join(dir, "workers", `${id}.pem`), key: join(dir, "workers", `${id}-key.pem`) }),
  };
}

export type State = "healthy" | "degraded" | "unhealthy" | "offline";

export interface Transition extends LogLine {
  worker: string;
  from: State | null;
  to: State;
  reasons: Array<{ code: string; message: string }>;
}

const isTransition = (l: LogLine): l is Transition => l.event === "transition";

/** A manager process, read through its log: every health transition is a log line. */
export class ManagerProc extends Proc {
  port = 0;

  static async start(certs: CertSet, extra: string[] = [], port = 0): Promise<ManagerProc> {
    const m = new ManagerProc("manager", [
      "manager",
      "--ca", certs.ca,
      "--cert", certs.managerCert,
      "--key", certs.managerKey,
      "--host", "127.0.0.1",
      "--port", String(port),
      // Disk and memory use on the test machine are not under test; pressure logic has unit tests.
      "--pressure-percent", "0",
      // Never the user's real state file.
      "--state", join(certs.dir, "state.json"),
      // Tests outside the namespace lab stay on loopback: no multicast on this machine's real interfaces.
      "--no-mdns",
      // Parallel tests would race for the default metrics port; a test that wants metrics passes its own.
      "--metrics-listen", "off",
      ...extra,
    ]);
    const listening = await m.waitFor((l) => l.msg === "manager listening", 10_000, "manager listening");
    m.port = listening.port as number;
    return m;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}`;
  }

  transitions(worker?: string): Transition[] {
    return this.lines.filter(isTransition).filter((t) => worker === undefined || t.worker === worker);
  }

  state(worker: string): State | undefined {
    return this.transitions(worker).at(-1)?.to;
  }

  /** The next transition of `worker` into `state` after line index `from`. */
  waitForState(worker: string, state: State, timeoutMs: number, from = 0): Promise<Transition> {
    return this.waitFor(
      (l) => isTransition(l) && l.worker === worker && l.to === state,
      timeoutMs,
      `${worker} ${state}`,
      from,
    ) as Promise<Transition>;
  }
}

export function startWorker(
  certs: CertSet,
  id: string,
  managerUrl: string,
  extra: string[] = [],
  env: Record<string, string> = {},
  certFor = id,
): Proc {
  const { cert, key } = certs.worker(certFor);
  return new Proc(
    `worker ${id}`,
    ["worker", "--ca", certs.ca, "--cert", cert, "--key", key, "--manager", managerUrl, "--no-mdns", ...extra],
    env,
  );
}

/**
 * The usual suite set-up: a temporary directory with certificates for `ids`, and, whatever happens, every
 * process killed and the directory removed at the end. Fields are filled in by `before`.
 */
export function useCerts(prefix: string, ids: string[], hooks: { before: (fn: () => Promise<void>) => void; after: (fn: () => Promise<void>) => void }) {
  const fixture = { certs: undefined as unknown as CertSet, dir: "" };
  let cleanup: () => Promise<void> = async () => {};
  hooks.before(async () => {
    const tmp = await tempDir(prefix);
    cleanup = tmp.cleanup;
    fixture.dir = tmp.path;
    fixture.certs = await makeCerts(tmp.path, ids);
  });
  hooks.after(async () => {
    killAll();
    await cleanup();
  });
  return fixture;
}
