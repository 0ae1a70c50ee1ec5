import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  LoggingMessageNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { errorMessage } from "../errors.js";
import { WORKERS_URI } from "../mcp/resources.js";
import { openClient, OperatorExit, type ConnectionSettings } from "./operator-connection.js";

// `status --watch` and `events --follow`: redraw when the manager says something changed (a resource update of
// fleet://workers, or a log notification of a transition), not on a poll. A slow refresh is kept as a safety
// net, and while the manager is unreachable the same timer tries to reconnect.

/** The safety refresh: heartbeat ages move on, and a notification lost in a reconnect is made good. */
const SAFETY_REFRESH_MS = 15_000;
const RECONNECT_MS = 2000;

export interface Watcher {
  /** Called on every change, one call at a time: a change during a refresh refreshes once more after it. */
  refresh: (client: Client) => Promise<void>;
  /** The manager cannot be reached; the watch keeps trying. */
  lost: (why: string) => void;
}

/**
 * Subscribes to the fleet's resource and keeps refreshing until SIGINT or SIGTERM; resolves then with exit 0.
 * `first` is the connected client; later ones are made from `s` after a loss.
 */
export function watchFleet(first: Client, s: ConnectionSettings, w: Watcher): Promise<number> {
  let client: Client | null = null;
  let running = false;
  let again = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(tick, ms);
  };

  const drop = (why: string) => {
    const c = client;
    client = null;
    void c?.close().catch(() => {});
    w.lost(why);
    schedule(RECONNECT_MS);
  };

  const refresh = async () => {
    if (running) return void (again = true);
    running = true;
    try {
      do {
        again = false;
        if (!client || stopped) break;
        try {
          await w.refresh(client);
        } catch (err) {
          drop(err instanceof OperatorExit ? err.message : errorMessage(err));
        }
      } while (again);
    } finally {
      running = false;
    }
    if (client) schedule(SAFETY_REFRESH_MS);
  };

  const attach = async (c: Client) => {
    const changed = () => void refresh();
    c.setNotificationHandler(ResourceUpdatedNotificationSchema, changed);
    c.setNotificationHandler(LoggingMessageNotificationSchema, changed);
    c.setNotificationHandler(ResourceListChangedNotificationSchema, changed);
    c.onclose = () => {
      if (client === c && !stopped) drop("the connection to the manager closed");
    };
    // The notification stream failing (a manager stopped or restarted) is said here, not by onclose: a refresh
    // finds out at once whether the manager is still there, and if not the watch reconnects.
    c.onerror = () => {
      if (client === c) void refresh();
    };
    try {
      await c.subscribeResource({ uri: WORKERS_URI }, { timeout: s.timeout });
    } catch (err) {
      await c.close().catch(() => {});
      throw err;
    }
    client = c;
    await refresh();
  };

  const tick = () => {
    if (stopped) return;
    if (client) return void refresh();
    openClient(s)
      .then(attach)
      .catch((err: unknown) => {
        if (!client) {
          w.lost(err instanceof OperatorExit ? err.message : errorMessage(err));
          schedule(RECONNECT_MS);
        }
      });
  };

  return new Promise((resolve) => {
    const stop = () => {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      const c = client;
      client = null;
      // A manager that went away must not hold Ctrl-C up.
      const closing = c ? Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000))]) : Promise.resolve();
      void closing.then(() => resolve(0));
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    attach(first).catch((err: unknown) => drop(errorMessage(err)));
  });
}
