/** What `npm run bench`'s join phase and its join simulator processes say to each other over the IPC channel. */
export type JoinSimCommand =
  /** Make the keys and CSRs of hosts `from` to `to` (they join as join-<n>, from 127.0.x.y). */
  | { op: "prepare"; from: number; to: number }
  /** Every prepared host dials `host:port` at once with this join string; answered with `joined` once all are welcomed. */
  | { op: "go"; host: string; port: number; join: string }
  | { op: "stats" }
  | { op: "quit" };

export interface JoinSimStats {
  total: number;
  /** Hosts that got their certificate. */
  issued: number;
  /** Of those, the ones whose mutual-TLS session got its welcome. */
  welcomed: number;
  /** Join exchanges tried, retries included. */
  attempts: number;
  /** Per issued host: ms from its first dial to its certificate in hand. */
  joinMs: number[];
  /** Epoch ms of the last certificate received, and of the last welcome. */
  lastIssuedAt: number;
  lastWelcomedAt: number;
  /** Failed attempts and refusals, by error or refusal code. */
  failures: Record<string, number>;
}

export type JoinSimReply =
  | { op: "ready" }
  | { op: "ok" }
  | { op: "prepared" }
  | { op: "joined"; stats: JoinSimStats }
  | { op: "stats"; stats: JoinSimStats };
