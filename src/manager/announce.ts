import { hostname } from "node:os";
import { FleetBrowser, type Peer } from "../discovery/browser.js";
import { Publisher } from "../discovery/publisher.js";
import type { Logger } from "../log.js";
import { PROTOCOL_VERSION } from "../protocol/messages.js";

/** The manager on mDNS: its own announcement, and the worker announcements it hears (hints, never registry entries). */
export interface Announcer {
  workers(): Peer[];
  stop(): Promise<void>;
}

const silent: Announcer = { workers: () => [], stop: () => Promise.resolve() };

/** `pin`: the first 16 hex digits of the CA pin, so a joining host knows its fleet's managers before it dials. */
export function startAnnouncing(o: { enabled: boolean; port: number; fleetId: string; pin?: string; log: Logger }): Announcer {
  if (!o.enabled) return silent;
  const publisher = new Publisher({
    name: `mcp-fleet manager on ${hostname().split(".")[0]}`,
    port: o.port,
    announcement: { role: "manager", fleet: o.fleetId, protocol: PROTOCOL_VERSION, ...(o.pin ? { pin: o.pin } : {}) },
    log: o.log,
  });
  const browser = new FleetBrowser({ log: o.log });
  void publisher.start();
  browser.start();
  return {
    workers: () => browser.list((p) => p.announcement.role === "worker"),
    // The goodbye is awaited: it is sent before the socket closes.
    stop: () => {
      browser.stop();
      return publisher.stop();
    },
  };
}
