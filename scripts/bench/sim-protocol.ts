/** What `npm run bench` and its fleet simulator processes say to each other over the IPC channel. */
export type SimCommand =
  | {
      op: "start";
      url: string;
      mode: "manager" | "baseline";
      /** The heartbeat pace against the baseline, which sends no welcome; the manager sets its own. */
      intervalMs: number;
      resume: boolean;
      certFile: string;
      from: number;
      to: number;
      concurrency: number;
    }
  /** With `since` (epoch ms), only sessions welcomed since then count as open. */
  | { op: "stats"; since?: number }
  | { op: "kill"; index: number }
  | { op: "freeze"; index: number }
  | { op: "resume-sessions"; resume: boolean }
  | { op: "quit" };

export interface SimStats {
  total: number;
  /** Sessions that are up and were welcomed (by the baseline: opened). */
  open: number;
  /** Of those, the ones whose TLS session was resumed. */
  resumed: number;
  /** Epoch ms (fractional) of the latest welcome. */
  lastWelcomeAt: number;
  heartbeatsSent: number;
  /** TLS handshakes finished (full or resumed), counted from the start. */
  handshakes: number;
  /** actions.run requests answered (the fan-out bench's no-op action). */
  invocationsRun: number;
  /** Heartbeat interval in ms → sessions at that pace. */
  intervals: Record<string, number>;
  failures: Record<string, number>;
}

export type SimReply =
  | { op: "ready" }
  | { op: "ok" }
  | { op: "started"; ms: number; stats: SimStats }
  | { op: "stats"; stats: SimStats }
  | { op: "killed"; id: string; at: number }
  | { op: "frozen"; id: string; lastHeartbeatAt: number };
