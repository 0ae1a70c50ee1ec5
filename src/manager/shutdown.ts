import type { WebSocketServer } from "ws";
import type { Logger } from "../log.js";
import type { LogThrottle } from "../log-throttle.js";
import type { Announcer } from "./announce.js";
import type { Chores } from "./chores.js";
import type { FrontDoor } from "./front-door.js";
import type { PaceController } from "./pace-controller.js";
import type { StateKeeper } from "./persistence.js";
import type { Revocations } from "./revocation.js";
import type { SessionTable } from "./session-table.js";

// Waiting for every close handshake is not worth more than this when an MCP client is waiting for us to exit.
const CLOSE_WAIT_MS = 500;

export interface RunningParts {
  jobs: { stop(): void };
  /** Hosts waiting on a join request are answered `pending` as it stops. */
  enrollment: { stop(): void };
  chores: Chores;
  pace: PaceController;
  door: FrontDoor;
  sessions: SessionTable;
  wss: WebSocketServer;
  revocations: Revocations | null;
  announcer: Announcer;
  keeper: StateKeeper | null;
  throttle: LogThrottle;
  log: Logger;
}

/** Resolves once every session is closed, or after `ms`, when the rest are cut off. */
function sessionsGone(sessions: SessionTable, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      clearInterval(check);
      for (const s of sessions) s.terminate();
      resolve();
    }, ms);
    const check = setInterval(() => {
      if (sessions.size > 0) return;
      clearTimeout(timer);
      clearInterval(check);
      resolve();
    }, 20);
  });
}

/**
 * Stops the manager. Accepting stops first: a worker told to go away reconnects at once, and a connection
 * accepted by a manager on its way out is reset when it exits, which costs the worker a longer backoff. Workers
 * then get a 1001, so they know this was a clean stop; the state is saved last.
 */
export async function shutDown(p: RunningParts): Promise<void> {
  // First: nothing more starts, and what still runs is lost (its sessions end now); the saved jobs say so.
  p.jobs.stop();
  p.enrollment.stop();
  p.chores.stop();
  p.pace.stop();
  const stopped = p.door.stopAccepting();
  p.revocations?.stop();
  const goodbye = p.announcer.stop();
  p.log.info({ sessions: p.sessions.size }, "closing worker sessions: manager shutting down");
  for (const s of p.sessions) s.close(1001, "manager shutting down");
  await sessionsGone(p.sessions, CLOSE_WAIT_MS);
  p.wss.close();
  p.door.destroyAll();
  await stopped;
  p.keeper?.stop();
  p.throttle.stop();
  await goodbye;
  p.log.info("manager stopped");
}
