import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { FleetError } from "../errors.js";
import { ROLES } from "./identity.js";
import { lockedUpdate, type LockedFile } from "./locked-update.js";

/**
 * Every certificate `mcp-fleet certs` has issued from this directory, so that revoking an id reaches each of
 * its certificates (a renewal with `issue --force` leaves the older one valid until it expires), and the
 * number of the last CRL written, so the next one is numbered higher even if crl.pem was lost. It holds no
 * secret (serials and dates, as the CRL itself does): mode 0644, like the certificates.
 */

const MODE = 0o644;

const Entry = z.object({
  serialNumber: z.string().regex(/^[0-9a-f]+$/),
  id: z.string().min(1),
  role: z.enum(ROLES),
  notBefore: z.iso.datetime(),
  notAfter: z.iso.datetime(),
  issuedAt: z.iso.datetime(),
  revokedAt: z.iso.datetime().nullable(),
  /** SHA-256 of the certificate's public key (hex): tells a host re-joining with its own key from another host. */
  keyFingerprint: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** How it was issued: "certs issue", "join", "approval", "renewal". Absent for entries older than this field. */
  source: z.string().min(1).max(64).optional(),
});
export type InventoryEntry = z.infer<typeof Entry>;

const Inventory = z.object({
  version: z.literal(1),
  /** Decimal text: CRL numbers may outgrow a JSON number. */
  crlNumber: z.string().regex(/^\d+$/),
  certificates: z.array(Entry),
});
export type Inventory = z.infer<typeof Inventory>;

const empty = (): Inventory => ({ version: 1, crlNumber: "0", certificates: [] });

export async function readInventory(path: string): Promise<Inventory> {
  if (!existsSync(path)) return empty();
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new FleetError("E_CERT", `${path} is not readable JSON: ${(err as Error).message}`);
  }
  const parsed = Inventory.safeParse(raw);
  if (!parsed.success) throw new FleetError("E_CERT", `${path} is not a certificate inventory: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

const inventoryFile = (path: string): LockedFile<Inventory> => ({
  path,
  read: readInventory,
  serialize: (inventory) => `${JSON.stringify(inventory, null, 2)}\n`,
  mode: MODE,
  busy: { code: "E_CERT", holder: "another mcp-fleet certs command" },
});

/**
 * Runs `change` with the inventory of `path` and writes what it returns, one command at a time: two `certs`
 * commands racing would otherwise lose one's certificate from the inventory, and so from a later revocation.
 */
export async function updateInventory<T>(path: string, change: (inventory: Inventory) => Promise<T>): Promise<T> {
  return lockedUpdate(inventoryFile(path), change);
}

export function entryFor(
  facts: { serialNumber: string; notBefore: Date; notAfter: Date },
  identity: { id: string; role: InventoryEntry["role"] },
): InventoryEntry {
  return {
    serialNumber: facts.serialNumber.toLowerCase(),
    id: identity.id,
    role: identity.role,
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    issuedAt: new Date().toISOString(),
    revokedAt: null,
  };
}

/** Adds `entry` unless its serial is already listed (a certificate adopted from before the inventory existed). */
export function record(inventory: Inventory, entry: InventoryEntry): void {
  if (!inventory.certificates.some((c) => c.serialNumber === entry.serialNumber)) inventory.certificates.push(entry);
}
