import { chown, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { FleetError, type FleetErrorCode } from "../errors.js";

/*
 * One way to change a JSON file that several mcp-fleet processes share (the certificate inventory, the join
 * file): one writer at a time, under a lock file beside it, and the new content swapped in atomically, so a reader
 * (or a crash) sees the old file or the new one, never half of one.
 */

const LOCK_WAIT_MS = 10_000;
// A lock older than this was left by a process that died: every change under it takes milliseconds.
const LOCK_STALE_MS = 30_000;
const LOCK_POLL_MS = 20;

export interface LockedFile<D> {
  path: string;
  read(path: string): Promise<D>;
  /** The text written for `data`; an unchanged text is not written again (watchers see no change). */
  serialize(data: D): string;
  mode: number;
  /** The error raised when another process holds the lock past the wait: code and who is likely to hold it. */
  busy: { code: FleetErrorCode; holder: string };
}

/** Runs `body` holding `<path>.lock`, waiting up to `waitMs` (10 s) for another holder to finish. */
export async function withFileLock<T>(
  path: string,
  busy: LockedFile<unknown>["busy"],
  body: () => Promise<T>,
  waitMs = LOCK_WAIT_MS,
): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await (await open(lock, "wx")).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new FleetError(busy.code, `${lock} is held by ${busy.holder}`);
      else await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }
  try {
    return await body();
  } finally {
    await rm(lock, { force: true });
  }
}

// This process's own updates of one file, in the order asked: each waits for the one before it here, so only one
// of them polls the lock file at a time. Polling against each other, a burst of joins starved some of them past
// the lock's wait, although no other process held the file.
const turns = new Map<string, Promise<unknown>>();

function inTurn<T>(path: string, body: () => Promise<T>): Promise<T> {
  const before = turns.get(path) ?? Promise.resolve();
  const mine = before.then(body, body);
  const settled = mine.then(
    () => undefined,
    () => undefined,
  );
  turns.set(path, settled);
  void settled.then(() => {
    if (turns.get(path) === settled) turns.delete(path);
  });
  return mine;
}

/**
 * Reads the file, lets `change` edit what was read, and writes it back, one process at a time (and one update
 * of this process at a time): two processes racing would otherwise lose one's change.
 */
export async function lockedUpdate<D, T>(file: LockedFile<D>, change: (data: D) => T | Promise<T>): Promise<T> {
  return inTurn(file.path, () =>
    withFileLock(file.path, file.busy, async () => {
      const data = await file.read(file.path);
      const before = file.serialize(data);
      const result = await change(data);
      const after = file.serialize(data);
      if (after !== before) await writeFileAtomic(file.path, after, file.mode);
      return result;
    }),
  );
}

/**
 * Writes `text` to a temporary file, flushes it and renames it over `path`. Run as root (sudo) on a file another
 * user owns, the new file keeps that owner (a new one takes its directory's), so the service that reads it still can.
 */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const handle = await open(tmp, "w", mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (process.getuid?.() === 0) {
      const owner = await stat(path).catch(() => stat(dirname(path)));
      await chown(tmp, owner.uid, owner.gid);
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
