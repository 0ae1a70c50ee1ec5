import { EventEmitter } from "node:events";
import type { Bonjour, Browser, Service } from "bonjour-service";
import type { Logger } from "../log.js";
import { openBonjour, rawMdns, type MdnsOptions } from "./mdns.js";
import { decodeTxt, SERVICE_SUFFIX, SERVICE_TYPE, type Announcement } from "./txt.js";

/** One announced `_mcp-fleet._tcp` service, as last heard. */
export interface Peer {
  fqdn: string;
  name: string;
  host: string;
  port: number;
  /** Where the announcement came from (the packet's source), then its A/AAAA records. */
  addresses: string[];
  announcement: Announcement;
  /** Monotonic milliseconds. */
  lastSeen: number;
}

export interface BrowserOptions {
  log: Logger;
  /** How often to ask the LAN again; a service that stops answering is dropped after 2.5 of these. */
  refreshMs?: number;
  mdns?: MdnsOptions;
}

const PTR_NAME = SERVICE_SUFFIX.slice(1); // "_mcp-fleet._tcp.local"

/**
 * Watches `_mcp-fleet._tcp` announcements. bonjour-service reports a service gone only on a goodbye and never
 * notices one that fell silent (a crashed or unplugged host), so liveness is kept here: every refresh starts a
 * fresh Browser (a fresh query that every live responder answers), and a service not heard for 2.5 refreshes
 * is dropped. Goodbyes (TTL 0) remove a service at once.
 */
export class FleetBrowser extends EventEmitter<{ change: [] }> {
  private readonly peers = new Map<string, Peer>();
  private bonjour: Bonjour | null = null;
  private browser: Browser | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly refreshMs: number;

  constructor(private readonly options: BrowserOptions) {
    super();
    this.refreshMs = options.refreshMs ?? 10_000;
  }

  start(): void {
    this.bonjour = openBonjour(this.options.log, "browse", this.options.mdns);
    rawMdns(this.bonjour).on("response", (packet) => {
      for (const rr of [...packet.answers, ...packet.additionals]) {
        if (rr.type === "PTR" && rr.ttl === 0 && rr.name.toLowerCase() === PTR_NAME) this.gone(String(rr.data));
      }
    });
    this.refresh();
    this.timer = setInterval(() => this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.browser?.stop();
    this.bonjour?.destroy();
    this.bonjour = null;
  }

  /** Live peers, the most recently heard first. */
  list(filter: (p: Peer) => boolean = () => true): Peer[] {
    return [...this.peers.values()].filter(filter).sort((a, b) => b.lastSeen - a.lastSeen);
  }

  private refresh(): void {
    if (!this.bonjour) return;
    const next = this.bonjour.find({ type: SERVICE_TYPE });
    const seen = (s: Service) => this.seen(s);
    next.on("up", seen);
    next.on("srv-update", seen);
    next.on("txt-update", seen);
    // Only one Browser listens at a time: each one adds a listener to the shared socket (docs/architecture.md, bonjour-service pitfalls).
    this.browser?.stop();
    this.browser = next;
    this.prune();
  }

  private seen(s: Service): void {
    const announcement = decodeTxt(s.txt);
    if (!announcement || !s.fqdn) {
      this.options.log.debug({ fqdn: s.fqdn, txt: s.txt }, "ignoring an _mcp-fleet._tcp announcement that is not ours");
      return;
    }
    const source = s.referer?.address;
    const addresses = [...new Set([...(source ? [source] : []), ...(s.addresses ?? [])])];
    const key = s.fqdn.toLowerCase();
    const before = this.peers.get(key);
    this.peers.set(key, { fqdn: s.fqdn, name: s.name, host: s.host, port: s.port, addresses, announcement, lastSeen: performance.now() });
    if (!before || before.port !== s.port || before.addresses.join() !== addresses.join() || JSON.stringify(before.announcement) !== JSON.stringify(announcement)) {
      this.options.log.debug({ fqdn: s.fqdn, addresses, role: announcement.role }, "mDNS peer seen");
      this.emit("change");
    }
  }

  private gone(fqdn: string): void {
    if (this.peers.delete(fqdn.toLowerCase())) {
      this.options.log.debug({ fqdn }, "mDNS peer said goodbye");
      this.emit("change");
    }
  }

  private prune(): void {
    const cutoff = performance.now() - 2.5 * this.refreshMs;
    let changed = false;
    for (const [key, p] of this.peers) {
      if (p.lastSeen < cutoff) {
        this.peers.delete(key);
        changed = true;
      }
    }
    if (changed) this.emit("change");
  }
}
