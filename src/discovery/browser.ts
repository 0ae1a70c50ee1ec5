import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import type { Bonjour, Browser, Service } from "bonjour-service";
import type { Logger } from "../log.js";
import { openBonjour, rawMdns, type MdnsOptions } from "./mdns.js";
import { decodeTxt, isOurInstance, isSrvHost, SERVICE_SUFFIX, SERVICE_TYPE, type Announcement } from "./txt.js";

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
 * Peers kept per role. Anyone on the LAN can announce, so what is kept is bounded: past this, the peer heard
 * longest ago is dropped to make room (a live one is heard again at the next refresh).
 */
export const MAX_PEERS_PER_ROLE = 256;
/** Addresses kept per peer: a host has a few; an announcement listing more is cut. */
const MAX_ADDRESSES = 8;

/**
 * An announcement in a form worth keeping, or why not. Everything in it came from the LAN, unauthenticated: the
 * instance name, the SRV target, the port, the TXT record and the addresses are each checked here, before any of
 * it is stored or shown (docs/protocol.md, "mDNS").
 */
export function peerFrom(s: Pick<Service, "fqdn" | "name" | "host" | "port" | "txt" | "addresses" | "referer">): Omit<Peer, "lastSeen"> | string {
  const announcement = decodeTxt(s.txt);
  if (!announcement) return "TXT record is not ours";
  if (!isOurInstance(s.name, s.fqdn)) return "instance name outside the allowed characters";
  if (!isSrvHost(s.host)) return "SRV target is not a host name";
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65_535) return "port out of range";
  const source = s.referer?.address;
  const addresses = [...new Set([...(source ? [source] : []), ...(s.addresses ?? [])])]
    .filter((a) => typeof a === "string" && isIP(a) !== 0)
    .slice(0, MAX_ADDRESSES);
  return { fqdn: s.fqdn, name: s.name, host: s.host, port: s.port, addresses, announcement };
}

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
    const peer = peerFrom(s);
    if (typeof peer === "string") {
      // The announcement's own text stays out of the log too: only where it came from and why it is ignored.
      this.options.log.debug({ from: s.referer?.address, why: peer }, "ignoring an _mcp-fleet._tcp announcement");
      return;
    }
    const key = peer.fqdn.toLowerCase();
    const before = this.peers.get(key);
    if (!before) this.makeRoom(peer.announcement.role);
    this.peers.set(key, { ...peer, lastSeen: performance.now() });
    const { port, addresses, announcement } = peer;
    if (!before || before.port !== port || before.addresses.join() !== addresses.join() || JSON.stringify(before.announcement) !== JSON.stringify(announcement)) {
      this.options.log.debug({ fqdn: peer.fqdn, addresses, role: announcement.role }, "mDNS peer seen");
      this.emit("change");
    }
  }

  /** Before a new peer of `role` is kept: at the cap, the one of that role heard longest ago goes. */
  private makeRoom(role: Announcement["role"]): void {
    let count = 0;
    let oldest: [string, Peer] | null = null;
    for (const entry of this.peers) {
      if (entry[1].announcement.role !== role) continue;
      count++;
      if (!oldest || entry[1].lastSeen < oldest[1].lastSeen) oldest = entry;
    }
    if (count >= MAX_PEERS_PER_ROLE && oldest) this.peers.delete(oldest[0]);
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
