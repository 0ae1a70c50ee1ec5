import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { FleetError } from "../errors.js";
import { WORKER_ID_PATTERN } from "../protocol/messages.js";
import { createCa, createCrl, issueCertificate, readCrlEntries, type Pem } from "./generate.js";
import { FLEET_NAME_PATTERN, readCertificate } from "./identity.js";
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
  await writeNew(files.crl, await createCrl({ ca, revoked: [] }), PUBLIC, true);
  return { fleet, files: [files.ca, files.caKey, files.manager, files.managerKey, files.crl] };
}

export interface IssueResult {
  id: string;
  cert: string;
  key: string;
  notAfter: Date;
  serialNumber: string;
}

export async function issueWorker(options: { dir: string; id: string; days?: number; force?: boolean }): Promise<IssueResult> {
  const id = validateWorkerId(options.id);
  const files = certLayout(options.dir);
  const ca = await loadCa(options.dir);
  const fleet = readCertificate(await readFile(files.manager, "utf8")).identity?.fleet;
  if (!fleet) throw new FleetError("E_CERT", `${files.manager} carries no fleet identity`);
  if (!options.force && (existsSync(files.worker(id)) || existsSync(files.workerKey(id)))) {
    throw new FleetError(
      "E_CERT_EXISTS",
      `a certificate for worker "${id}" already exists in ${files.workersDir}; pass --force to replace it ` +
        "(the old one stays valid until it expires or you revoke it)",
    );
  }
  await mkdir(files.workersDir, { recursive: true, mode: 0o755 });
  const issued = await issueCertificate({ ca, identity: { fleet, role: "worker", id }, days: options.days ?? 365 });
  await writeNew(files.workerKey(id), issued.keyPem, PRIVATE, options.force);
  await writeNew(files.worker(id), issued.certPem, PUBLIC, options.force);
  return { id, cert: files.worker(id), key: files.workerKey(id), notAfter: issued.notAfter, serialNumber: issued.serialNumber };
}

export async function revokeWorker(options: { dir: string; id: string }): Promise<{ id: string; serialNumber: string; crl: string }> {
  const id = validateWorkerId(options.id);
  const files = certLayout(options.dir);
  const ca = await loadCa(options.dir);
  if (!existsSync(files.worker(id))) {
    throw new FleetError("E_CERT", `no certificate for worker "${id}" in ${files.workersDir}`);
  }
  const serialNumber = readCertificate(await readFile(files.worker(id), "utf8")).serialNumber;
  const revoked = existsSync(files.crl) ? readCrlEntries(await readFile(files.crl, "utf8")) : [];
  if (!revoked.some((r) => r.serialNumber === serialNumber)) {
    revoked.push({ serialNumber, revokedAt: new Date() });
  }
  await writeNew(files.crl, await createCrl({ ca, revoked }), PUBLIC, true);
  return { id, serialNumber, crl: files.crl };
}
