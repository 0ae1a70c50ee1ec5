import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { FleetError } from "../errors.js";
import { WORKER_ID_PATTERN } from "../protocol/messages.js";
import { createCa, createCrl, issueCertificate, readCrl, type Pem, type RevokedEntry } from "./generate.js";
import { CLIENT_ROLES, FLEET_NAME_PATTERN, readCertificate, type ClientRole } from "./identity.js";
import { entryFor, readInventory, record, updateInventory, type Inventory, type InventoryEntry } from "./inventory.js";
import { keyFingerprint } from "./csr.js";
import { certLayout } from "./layout.js";

const PRIVATE = 0o600;
const PUBLIC = 0o644;

/**
 * Writes a file that must not exist yet, or, with `replace`, swaps it in atomically. Modes are set explicitly:
 * the process umask may be anything.
 */
async function writeNew(path: string, data: string, mode: number, replace = false): Promise<void> {
  if (!replace) {
    await writeFile(path, data, { mode, flag: "wx" });
  } else {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, data, { mode, flag: "w" });
    await rename(tmp, path);
  }
  await chmod(path, mode);
}

async function loadCa(dir: string): Promise<Pem> {
  const files = certLayout(dir);
  if (!existsSync(files.ca) || !existsSync(files.caKey)) {
    throw new FleetError("E_CERT", `no fleet CA in ${dir}: run \`mcp-fleet certs init --dir ${dir}\` first`);
  }
  return { certPem: await readFile(files.ca, "utf8"), keyPem: await readFile(files.caKey, "utf8") };
}

/** Normalises a worker id to lower case (DNS is case-insensitive) and refuses anything that is not a DNS label. */
export function validateWorkerId(raw: string): string {
  const id = raw.toLowerCase();
  if (!WORKER_ID_PATTERN.test(id)) {
    throw new FleetError(
      "E_CONFIG",
      `"${raw}" is not a valid worker id: it must be a DNS label (letters, digits and '-', 1 to 63 characters, ` +
        "not starting or ending with '-')",
    );
  }
  return id;
}

export interface InitResult {
  fleet: string;
  files: string[];
}

export async function initFleet(options: { dir: string; fleet: string; days?: number; managerDays?: number }): Promise<InitResult> {
  const fleet = options.fleet.toLowerCase();
  if (!FLEET_NAME_PATTERN.test(fleet)) {
    throw new FleetError("E_CONFIG", `"${options.fleet}" is not a valid fleet name: it must be a DNS label`);
  }
  const files = certLayout(options.dir);
  const existing = [files.ca, files.caKey, files.manager, files.managerKey].filter((f) => existsSync(f));
  if (existing.length > 0) {
    throw new FleetError(
      "E_CERT_EXISTS",
      `refusing to overwrite the existing fleet CA in ${options.dir} (${existing.join(", ")}): every certificate ` +
        "it signed would stop working. Move it away first if you really mean to start a new fleet.",
    );
  }
  await mkdir(files.workersDir, { recursive: true, mode: 0o755 });
  const ca = await createCa({ fleet, days: options.days ?? 3650 });
  const manager = await issueCertificate({
    ca,
    identity: { fleet, role: "manager", id: "manager" },
    days: options.managerDays ?? 825,
    dnsNames: [...new Set(["localhost", hostname().toLowerCase()])],
    ipAddresses: ["127.0.0.1", "::1"],
  });
  // The CA key goes first and exclusively: if two inits race, one of them fails before writing anything else.
  await writeNew(files.caKey, ca.keyPem, PRIVATE);
  await writeNew(files.ca, ca.certPem, PUBLIC);
  await writeNew(files.managerKey, manager.keyPem, PRIVATE);
  await writeNew(files.manager, manager.certPem, PUBLIC);
  await updateInventory(files.inventory, async (inventory) => {
    record(inventory, entryFor(readCertificate(manager.certPem), { id: "manager", role: "manager" }));
    inventory.crlNumber = "1";
    await writeNew(files.crl, await createCrl({ ca, revoked: [], number: 1n }), PUBLIC, true);
  });
  return { fleet, files: [files.ca, files.caKey, files.manager, files.managerKey, files.crl, files.inventory] };
}

export interface IssueResult {
  id: string;
  cert: string;
  key: string;
  notAfter: Date;
  serialNumber: string;
}

export async function issueWorker(options: { dir: string; id: string; days?: number; force?: boolean }): Promise<IssueResult> {
  return issueClient({ ...options, role: "worker" });
}

const ROLE_FLAG = (role: ClientRole) => (role === "worker" ? "" : ` --role ${role}`);

/**
 * Issues a client certificate: a worker's, or an operator's or viewer's (a person's MCP client on /mcp). Each
 * role has its own directory and its own ids, so an operator named like a host never touches that host's files.
 */
export async function issueClient(options: { dir: string; id: string; role: ClientRole; days?: number; force?: boolean }): Promise<IssueResult> {
  const { role } = options;
  const id = validateWorkerId(options.id);
  const files = certLayout(options.dir);
  const ca = await loadCa(options.dir);
  const fleet = readCertificate(await readFile(files.manager, "utf8")).identity?.fleet;
  if (!fleet) throw new FleetError("E_CERT", `${files.manager} carries no fleet identity`);
  const cert = files.client(role, id);
  const key = files.clientKey(role, id);
  if (!options.force && (existsSync(cert) || existsSync(key))) {
    throw new FleetError(
      "E_CERT_EXISTS",
      `a certificate for ${role} "${id}" already exists in ${files.clientDir(role)}; pass --force to replace it ` +
        `(the old one stays valid until it expires or \`certs revoke${ROLE_FLAG(role)}\` revokes this id)`,
    );
  }
  await mkdir(files.clientDir(role), { recursive: true, mode: 0o755 });
  return updateInventory(files.inventory, async (inventory) => {
    // The certificate being replaced stays valid until it expires: it must stay revocable by its id.
    await adoptCurrent(inventory, cert, id, role);
    const issued = await issueCertificate({ ca, identity: { fleet, role, id }, days: options.days ?? 365 });
    record(inventory, { ...entryFor(readCertificate(issued.certPem), { id, role }), keyFingerprint: keyFingerprint(issued.keyPem), source: "certs issue" });
    await writeNew(key, issued.keyPem, PRIVATE, options.force);
    await writeNew(cert, issued.certPem, PUBLIC, options.force);
    return { id, cert, key, notAfter: issued.notAfter, serialNumber: issued.serialNumber };
  });
}

/** Lists the certificate now at `certPath` if the inventory does not know it yet (issued before it existed). */
async function adoptCurrent(inventory: Inventory, certPath: string, id: string, role: ClientRole = "worker"): Promise<void> {
  if (!existsSync(certPath)) return;
  const facts = readCertificate(await readFile(certPath, "utf8"));
  if (facts.identity?.role !== role || facts.identity.id !== id) return;
  const entry = entryFor(facts, { id, role });
  entry.issuedAt = facts.notBefore.toISOString();
  record(inventory, entry);
}

export interface RevokeResult {
  id: string;
  role: ClientRole;
  /** Serials revoked by this command. */
  revoked: string[];
  /** Serials of this id that an earlier revocation already covered. */
  alreadyRevoked: string[];
  crl: string;
  crlNumber: bigint;
}

/**
 * Revokes every unexpired certificate issued to `id` in `role` (default worker; renewals leave older ones valid) and writes a CRL
 * numbered above every earlier one, so the manager can tell it from an older CRL put back in its place.
 */
export async function revokeClient(options: { dir: string; id: string; role?: ClientRole }): Promise<RevokeResult> {
  const id = validateWorkerId(options.id);
  const role = options.role ?? "worker";
  const result = await revokeCertificatesOf({ dir: options.dir, ca: await loadCa(options.dir), id, role });
  if (!result) throw new FleetError("E_CERT", `no certificate for ${role} "${id}" in ${options.dir}`);
  return result;
}

/**
 * Revokes the unexpired, unrevoked certificates of worker `id` in the inventory of `dir`, all of them or all but
 * `keepSerial`, and rewrites the CRL (signed by `ca`). Null when the inventory knows no certificate of `id`.
 * `certs revoke` and the manager's enrollment (a token that replaces an id) both revoke through here.
 */
export async function revokeCertificatesOf(options: { dir: string; ca: Pem; id: string; role?: ClientRole; keepSerial?: string }): Promise<RevokeResult | null> {
  const { id, ca } = options;
  const role = options.role ?? "worker";
  const files = certLayout(options.dir);
  return updateInventory(files.inventory, async (inventory) => {
    await adoptCurrent(inventory, files.client(role, id), id, role);
    const now = new Date();
    const mine = inventory.certificates.filter((c) => c.role === role && c.id === id);
    if (mine.length === 0) return null;
    const alreadyRevoked = mine.filter((c) => c.revokedAt !== null).map((c) => c.serialNumber);
    const revoked: string[] = [];
    for (const c of mine) {
      if (c.serialNumber === options.keepSerial) continue;
      if (c.revokedAt === null && Date.parse(c.notAfter) > now.getTime()) {
        c.revokedAt = now.toISOString();
        revoked.push(c.serialNumber);
      }
    }
    const current = existsSync(files.crl) ? readCrl(await readFile(files.crl, "utf8")) : null;
    const crlNumber = [BigInt(inventory.crlNumber), current?.number ?? 0n].reduce((a, b) => (a > b ? a : b)) + 1n;
    await writeNew(files.crl, await createCrl({ ca, revoked: crlEntries(inventory, current?.entries ?? []), number: crlNumber }), PUBLIC, true);
    inventory.crlNumber = crlNumber.toString();
    return { id, role, revoked, alreadyRevoked, crl: files.crl, crlNumber };
  });
}

/** What the CRL lists: everything it listed before, and every certificate the inventory says is revoked. */
function crlEntries(inventory: Inventory, previous: RevokedEntry[]): RevokedEntry[] {
  const bySerial = new Map(previous.map((e) => [e.serialNumber, e]));
  for (const c of inventory.certificates) {
    if (c.revokedAt !== null && !bySerial.has(c.serialNumber)) bySerial.set(c.serialNumber, { serialNumber: c.serialNumber, revokedAt: new Date(c.revokedAt) });
  }
  return [...bySerial.values()];
}

export type CertificateStatus = "valid" | "expired" | "revoked";

export interface ListedCertificate extends InventoryEntry {
  status: CertificateStatus;
  /** The certificate now in workers/<id>.pem (operators/, viewers/, or manager.pem): the one a fresh install would use. */
  current: boolean;
}

/** Every certificate issued from `dir`, oldest first, with whether it is revoked, expired, and the current one. */
export async function listCertificates(options: { dir: string }): Promise<ListedCertificate[]> {
  const files = certLayout(options.dir);
  if (!existsSync(files.ca)) throw new FleetError("E_CERT", `no fleet CA in ${options.dir}: run \`mcp-fleet certs init --dir ${options.dir}\` first`);
  const inventory = await readInventory(files.inventory);
  const currentSerials = new Set<string>();
  for (const role of CLIENT_ROLES) {
    const names = existsSync(files.clientDir(role)) ? await readdir(files.clientDir(role)) : [];
    for (const name of names.filter((n) => n.endsWith(".pem") && !n.endsWith("-key.pem"))) {
      const id = name.slice(0, -".pem".length);
      await adoptCurrent(inventory, files.client(role, id), id, role);
      currentSerials.add(readCertificate(await readFile(files.client(role, id), "utf8")).serialNumber);
    }
  }
  if (existsSync(files.manager)) {
    const manager = readCertificate(await readFile(files.manager, "utf8"));
    currentSerials.add(manager.serialNumber);
    record(inventory, { ...entryFor(manager, { id: "manager", role: "manager" }), issuedAt: manager.notBefore.toISOString() });
  }
  const now = Date.now();
  return inventory.certificates
    .map((c) => ({
      ...c,
      status: (c.revokedAt !== null ? "revoked" : Date.parse(c.notAfter) <= now ? "expired" : "valid") as CertificateStatus,
      current: currentSerials.has(c.serialNumber),
    }))
    .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
}
