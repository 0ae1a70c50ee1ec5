import { Bonjour } from "bonjour-service";
import type { Logger } from "../log.js";

export interface MdnsOptions {
  /** Bind address; 0.0.0.0 unless told otherwise (bonjour-service's `interface` option also binds the socket: docs/architecture.md, bonjour-service pitfalls). */
  bind?: string;
}

/**
 * One bonjour-service instance, made safe to run inside a long-lived process: its default error callback throws,
 * and multicast-dns emits an unhandled 'error' when port 5353 cannot be bound (avahi holding it exclusively, no
 * permission). Here both are logged and the process carries on without mDNS.
 */
export function openBonjour(log: Logger, what: string, options: MdnsOptions = {}): Bonjour {
  // The options go to multicast-dns; bonjour-service's type for them is narrower than what it passes on.
  const mdnsOptions = { bind: options.bind ?? "0.0.0.0" } as unknown as ConstructorParameters<typeof Bonjour>[0];
  const bonjour = new Bonjour(mdnsOptions, (err: Error) =>
    log.warn({ err: err.message, what }, "mDNS send failed"),
  );
  const mdns = (bonjour as unknown as { server: { mdns: NodeJS.EventEmitter } }).server.mdns;
  mdns.on("error", (err: Error & { code?: string }) =>
    log.error({ err: err.message, code: err.code, what }, "mDNS unavailable (port 5353); use --manager to connect without it"),
  );
  mdns.on("warning", (err: Error) => log.debug({ err: err.message, what }, "mDNS warning"));
  return bonjour;
}

/** The raw multicast-dns socket under a bonjour-service instance, for queries of our own. */
export function rawMdns(bonjour: Bonjour): RawMdns {
  return (bonjour as unknown as { server: { mdns: RawMdns } }).server.mdns;
}

export interface MdnsRecord {
  name: string;
  type: string;
  ttl?: number;
  data?: unknown;
}

export interface RawMdns extends NodeJS.EventEmitter {
  query(name: string, type: string, cb?: (err?: Error) => void): void;
  on(event: "response", listener: (packet: { answers: MdnsRecord[]; additionals: MdnsRecord[] }, rinfo: { address: string }) => void): this;
  on(event: string, listener: (...args: unknown[]) => void): this;
}
