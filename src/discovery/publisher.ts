import { hostname, networkInterfaces } from "node:os";
import type { Bonjour, Service } from "bonjour-service";
import type { Logger } from "../log.js";
import { toHostname } from "../protocol/text.js";
import { openBonjour, rawMdns, type MdnsOptions } from "./mdns.js";
import { encodeTxt, instanceName, SERVICE_SUFFIX, SERVICE_TYPE, type Announcement } from "./txt.js";

const PROBE_TRIES = 3;
const PROBE_GAP_MS = 250;
const MAX_RENAMES = 20;

/** All non-internal addresses, as the A/AAAA records bonjour-service would publish them. */
function addressSignature(): string {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal)
    .map((a) => a!.address)
    .sort()
    .join(",");
}

export interface PublisherOptions {
  /** The instance name wanted; " (2)", " (3)"... is added if another host already uses it. */
  name: string;
  port: number;
  announcement: Announcement;
  log: Logger;
  /** How often to look for changed interface addresses (bonjour-service fixes them at announce time). */
  interfaceCheckMs?: number;
  mdns?: MdnsOptions;
}

/**
 * Announces one service, on its own bonjour-service instance: stopping a service withdraws every record of the
 * same name in its instance, including a sibling's host records (docs/architecture.md, bonjour-service pitfalls), so services never share one.
 */
export class Publisher {
  private bonjour: Bonjour | null = null;
  private service: Service | null = null;
  private timer: NodeJS.Timeout | null = null;
  private signature = "";
  private stopped = false;
  name: string;

  constructor(private readonly options: PublisherOptions) {
    this.name = instanceName(options.name);
  }

  async start(): Promise<void> {
    this.bonjour = openBonjour(this.options.log, "announce", this.options.mdns);
    this.name = await this.freeName(instanceName(this.options.name));
    if (this.stopped) return;
    this.publish();
    this.timer = setInterval(() => {
      if (addressSignature() !== this.signature) this.republish("interface addresses changed");
    }, this.options.interfaceCheckMs ?? 5000);
    this.timer.unref();
  }

  /** Withdraws the announcement (a goodbye, TTL 0) and closes the socket. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const service = this.service;
    this.service = null;
    if (service) {
      // The callback runs once the goodbye is on the wire; destroying the socket before that loses it.
      await new Promise<void>((resolve) => (service.stop ? service.stop(() => resolve()) : resolve()));
      this.options.log.info({ instance: this.name }, "withdrew the mDNS announcement");
    }
    await new Promise<void>((resolve) => (this.bonjour ? this.bonjour.destroy(() => resolve()) : resolve()));
    this.bonjour = null;
  }

  private publish(): void {
    this.signature = addressSignature();
    this.service = this.bonjour!.publish({
      name: this.name,
      type: SERVICE_TYPE,
      port: this.options.port,
      txt: encodeTxt(this.options.announcement),
      // bonjour-service would use the bare host name as SRV target, which resolvers cannot find.
      // The SRV target is a host name by RFC 1123, as browsers (ours too) require.
      host: `${toHostname(hostname().split(".")[0] ?? "", "host")}.local`,
      // Its own probe reports a conflict with console.log, which would corrupt an MCP stdout; ours is in freeName.
      probe: false,
    });
    this.service.on("up", () =>
      this.options.log.info({ instance: this.name, role: this.options.announcement.role, addresses: this.signature }, "announced on mDNS"),
    );
  }

  private republish(reason: string): void {
    if (this.stopped || !this.service) return;
    this.options.log.info({ instance: this.name, reason }, "announcing again on mDNS");
    this.service.stop?.();
    this.publish();
  }

  /** RFC 6762 probing, simplified: ask for the name three times; anyone answering owns it, so take the next. */
  private async freeName(base: string): Promise<string> {
    for (let n = 1; n <= MAX_RENAMES && !this.stopped; n++) {
      const candidate = n === 1 ? base : instanceName(`${base.slice(0, 56)} (${n})`);
      if (!(await this.inUse(candidate))) {
        if (n > 1) this.options.log.warn({ wanted: base, instance: candidate }, "mDNS name in use by another host; renamed");
        return candidate;
      }
    }
    return base;
  }

  private inUse(name: string): Promise<boolean> {
    const fqdn = `${name}${SERVICE_SUFFIX}`.toLowerCase();
    const mdns = rawMdns(this.bonjour!);
    return new Promise((resolve) => {
      let tries = 0;
      let timer: NodeJS.Timeout;
      const onResponse = (packet: { answers: Array<{ name: string }>; additionals: Array<{ name: string }> }) => {
        if ([...packet.answers, ...packet.additionals].some((rr) => rr.name.toLowerCase() === fqdn)) done(true);
      };
      const done = (taken: boolean) => {
        clearTimeout(timer);
        mdns.removeListener("response", onResponse);
        resolve(taken);
      };
      const ask = () => {
        if (tries++ >= PROBE_TRIES) return done(false);
        mdns.query(fqdn, "ANY", () => undefined);
        timer = setTimeout(ask, PROBE_GAP_MS);
      };
      mdns.on("response", onResponse);
      ask();
    });
  }
}
