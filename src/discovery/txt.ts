import { createHash, X509Certificate } from "node:crypto";
import { z } from "zod";
import { WorkerId } from "../protocol/messages.js";
import { HOSTNAME_PATTERN, VersionText } from "../protocol/text.js";

/** DNS-SD service type: `_mcp-fleet._tcp.local`. */
export const SERVICE_TYPE = "mcp-fleet";
export const SERVICE_SUFFIX = `._${SERVICE_TYPE}._tcp.local`;
const TXT_VERSION = "1";

/**
 * What one announcement says. Everything in it is a hint: the fleet id only saves a worker from dialling
 * managers of other fleets; the manager's certificate is what is trusted (docs/architecture.md, fixed decision 2).
 */
export interface Announcement {
  role: "manager" | "worker";
  /** Derived from the fleet CA's certificate: equal fleet ids mean the same CA. */
  fleet: string;
  protocol: number;
  /** Workers: their id (also in their certificate). */
  id?: string;
  /** Workers: the agent version. */
  version?: string;
  /**
   * Managers: the first 16 hex digits of the CA pin (SHA-256 of the CA's public key), so a joining worker, which
   * knows only the pin, can tell its fleet's managers from others' before it dials. A hint like the rest.
   */
  pin?: string;
}

/** The first 16 hex digits of the SHA-256 of the CA certificate (DER): short enough for TXT, long enough to tell fleets apart. */
export function fleetIdFromCa(caPem: string | Buffer): string {
  return createHash("sha256").update(new X509Certificate(caPem).raw).digest("hex").slice(0, 16);
}

/**
 * TXT values are all non-empty strings: bonjour-service stringifies booleans and drops empty values and
 * one-character entries, so nothing here depends on those.
 */
export function encodeTxt(a: Announcement): Record<string, string> {
  const txt: Record<string, string> = { txtvers: TXT_VERSION, role: a.role, fleet: a.fleet, proto: String(a.protocol) };
  if (a.id) txt.id = a.id;
  if (a.version) txt.ver = a.version;
  if (a.pin) txt.pin = a.pin;
  return txt;
}

const Txt = z.object({
  txtvers: z.literal(TXT_VERSION),
  role: z.enum(["manager", "worker"]),
  fleet: z.string().regex(/^[0-9a-f]{16}$/),
  proto: z.coerce.number().int().positive(),
  id: WorkerId.optional(),
  ver: VersionText.optional(),
  pin: z.string().regex(/^[0-9a-f]{16}$/).optional(),
});

/** Reads a TXT record from anyone on the LAN; anything that is not ours, or not well formed, is null. */
export function decodeTxt(txt: unknown): Announcement | null {
  const parsed = Txt.safeParse(txt);
  if (!parsed.success) return null;
  const t = parsed.data;
  if (t.role === "worker" && !t.id) return null;
  const a: Announcement = { role: t.role, fleet: t.fleet, protocol: t.proto, id: t.id, version: t.ver };
  if (t.pin) a.pin = t.pin;
  return a;
}

/**
 * Instance names as this project makes them ("mcp-fleet worker w1", "... (2)"): letters, digits, spaces, '-', '_',
 * '(' and ')', at most 63. DNS-SD allows any UTF-8, but an announcer's name is text from anyone on the LAN: one
 * outside this class is not ours and is not kept. (Dots would also confuse bonjour-service's parser.)
 */
export const INSTANCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 _()-]{0,62}$/;

/** A name to announce under: characters outside the instance-name class become '-'. */
export function instanceName(text: string): string {
  const name = text.replace(/[^A-Za-z0-9 _()-]/g, "-").slice(0, 63);
  return INSTANCE_NAME_PATTERN.test(name) ? name : `x${name.slice(0, 62)}`;
}

/** An SRV target, with or without the root's trailing dot: an RFC 1123 host name. */
export function isSrvHost(host: unknown): host is string {
  return typeof host === "string" && HOSTNAME_PATTERN.test(host.endsWith(".") ? host.slice(0, -1) : host);
}

/** An instance name of this project's class, whose full name is that name under our service type. */
export function isOurInstance(name: unknown, fqdn: unknown): name is string {
  if (typeof name !== "string" || typeof fqdn !== "string" || !INSTANCE_NAME_PATTERN.test(name)) return false;
  const full = fqdn.toLowerCase().replace(/\.$/, "");
  return full === `${name}${SERVICE_SUFFIX}`.toLowerCase();
}
