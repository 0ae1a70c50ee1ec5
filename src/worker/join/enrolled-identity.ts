import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { errorMessage } from "../../errors.js";
import { loadTlsMaterial, type TlsMaterial, type TlsPaths } from "../../tls/contexts.js";

/** Where a worker that joined by itself keeps what it was given (--state-dir; systemd's StateDirectory). */
export const DEFAULT_STATE_DIR = "/var/lib/mcp-fleet";

export interface EnrolledPaths extends TlsPaths {
  dir: string;
  /** A key made before a join or a renewal is asked for, kept until its certificate arrives. */
  pendingKey: string;
}

export function enrolledPaths(stateDir: string): EnrolledPaths {
  return {
    dir: stateDir,
    ca: join(stateDir, "ca.pem"),
    cert: join(stateDir, "worker.pem"),
    key: join(stateDir, "worker-key.pem"),
    pendingKey: join(stateDir, "worker-key.pending.pem"),
  };
}

const PRIVATE = 0o600;
const PUBLIC = 0o644;

/** The state dir, made 0700 if it is missing (an existing one keeps the mode its owner gave it). */
export function ensureStateDir(paths: EnrolledPaths): void {
  if (!existsSync(paths.dir)) mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
}

/** Written to a temporary file beside it, synced, then renamed: a crash leaves the old file or the new one. */
function writeTemp(path: string, data: string, mode: number): string {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, Buffer.from(data));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The process umask may have narrowed (or a stale temporary file widened) the mode.
  chmodSync(tmp, mode);
  return tmp;
}

function writeAtomic(path: string, data: string, mode: number): void {
  renameSync(writeTemp(path, data, mode), path);
}

export type EnrolledState =
  | { status: "none" }
  | { status: "valid"; material: TlsMaterial }
  /** Chains to its CA and matches its key, but is outside its validity now: expired while the host was away. */
  | { status: "expired" | "not_yet_valid"; material: TlsMaterial }
  | { status: "unusable"; reason: string };

/**
 * What the state dir holds: nothing yet, an identity to start with, one that is out of its validity, or files that
 * do not make a usable identity (a missing one, a key that does not match, a certificate from another CA).
 */
export function loadEnrolledIdentity(paths: EnrolledPaths, now = new Date()): EnrolledState {
  const present = [paths.ca, paths.cert, paths.key].filter((p) => existsSync(p));
  if (present.length === 0) return { status: "none" };
  if (present.length < 3) {
    const missing = [paths.ca, paths.cert, paths.key].filter((p) => !present.includes(p));
    return { status: "unusable", reason: `missing ${missing.join(", ")}` };
  }
  let material: TlsMaterial;
  try {
    material = loadTlsMaterial(paths, "worker");
  } catch (err) {
    return { status: "unusable", reason: errorMessage(err) };
  }
  const { notBefore, notAfter } = material.self;
  if (now > notAfter) return { status: "expired", material };
  if (now < notBefore) return { status: "not_yet_valid", material };
  return { status: "valid", material };
}

/**
 * Keeps a new identity: the CA (on joining), then the key and the certificate. Both are written to temporary
 * files first and renamed last, key then certificate, so the pair on disk is mismatched for at most the instant
 * between two renames; a load in that instant reports "unusable" rather than using half of it.
 */
export function saveEnrolledIdentity(paths: EnrolledPaths, o: { caPem?: string; certPem: string; keyPem: string }): void {
  ensureStateDir(paths);
  if (o.caPem !== undefined) writeAtomic(paths.ca, o.caPem, PUBLIC);
  const keyTmp = writeTemp(paths.key, o.keyPem, PRIVATE);
  const certTmp = writeTemp(paths.cert, o.certPem, PUBLIC);
  renameSync(keyTmp, paths.key);
  renameSync(certTmp, paths.cert);
  rmSync(paths.pendingKey, { force: true });
}

/** The pending key, if one was made earlier (by this process or one before it). */
export function readPendingKey(paths: EnrolledPaths): string | null {
  try {
    return readFileSync(paths.pendingKey, "utf8");
  } catch {
    return null;
  }
}

/** Written before anything is sent, so the key a request names survives a restart and the request stays the same. */
export function writePendingKey(paths: EnrolledPaths, keyPem: string): void {
  ensureStateDir(paths);
  writeAtomic(paths.pendingKey, keyPem, PRIVATE);
}
