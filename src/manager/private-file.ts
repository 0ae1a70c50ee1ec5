import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Text is handed to the file in pieces of about this size: a large state is never one string, nor one Buffer. */
const WRITE_PIECE_CHARS = 256 * 1024;

/**
 * Writes a file only the manager's user may read (0600, in a 0700 directory if it makes one), atomically: a
 * crash leaves either the old file or the new one, never half of one. `data` may be the text in pieces, written as
 * they come (gathered to about WRITE_PIECE_CHARS per write), so the whole text is never held at once.
 */
export function writePrivateFileAtomic(path: string, data: string | Buffer | Iterable<string>): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    if (typeof data === "string" || Buffer.isBuffer(data)) writeAll(fd, data);
    else writePieces(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function writePieces(fd: number, pieces: Iterable<string>): void {
  let gathered: string[] = [];
  let chars = 0;
  for (const piece of pieces) {
    gathered.push(piece);
    chars += piece.length;
    if (chars < WRITE_PIECE_CHARS) continue;
    writeAll(fd, gathered.join(""));
    gathered = [];
    chars = 0;
  }
  if (chars > 0) writeAll(fd, gathered.join(""));
}

/** writeSync may write less than it was given (a full disk, a signal): the rest follows until all is written. */
function writeAll(fd: number, data: string | Buffer): void {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}
