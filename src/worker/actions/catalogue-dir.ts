import { EventEmitter } from "node:events";
import { constants, watch, type FSWatcher, type Stats } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../../errors.js";
import type { Logger } from "../../log.js";
import { MAX_DEFINITION_BYTES, parseDefinition, type CommandAction } from "./definition.js";

/** Changes to the dir come in bursts (an editor's temporary file, a package unpacking several files). */
const DEBOUNCE_MS = 200;
/** More files than any catalogue can hold (MAX_CATALOG_ENTRIES); beyond this the dir is not read further. */
const MAX_FILES = 1024;

/**
 * Who may define what runs on this host: root, or the agent's own user (a test, a user-level install). A file
 * anyone else can write could be rewritten to run anything, so it is refused.
 */
function ownershipProblem(st: Stats): { field: string; message: string } | null {
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== uid) return { field: "owner", message: `is owned by uid ${st.uid}, not by root or the agent's user` };
  if ((st.mode & 0o022) !== 0) return { field: "mode", message: `is writable by group or others (mode ${(st.mode & 0o777).toString(8)})` };
  return null;
}

/**
 * The command actions defined in the actions dir: one `*.json` file each. A bad file is refused with a log line
 * naming the file and the field, and the rest still load. The dir is watched, and re-read on reload() (SIGHUP);
 * "change" is emitted when what it defines changed.
 */
export class ActionsDir extends EventEmitter<{ change: [] }> {
  private actions: CommandAction[] = [];
  private fingerprint = "[]";
  private watcher: FSWatcher | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private loading: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /** The dir's state last logged ("missing", "refused", "ok"), so a repeat is not logged again. */
  private dirState = "";
  private readonly log: Logger;

  constructor(private readonly options: { dir: string; log: Logger; debounceMs?: number }) {
    super();
    this.log = options.log.child({ actionsDir: options.dir });
  }

  start(): Promise<void> {
    return this.reload();
  }

  list(): readonly CommandAction[] {
    return this.actions;
  }

  /** Reads the dir again; concurrent calls share one read, and a call during a read causes one more after it. */
  reload(): Promise<void> {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        do {
          this.again = false;
          await this.load();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, "actions dir could not be read");
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  stop(): void {
    this.stopped = true;
    if (this.debounce) clearTimeout(this.debounce);
    this.unwatch();
  }

  private async load(): Promise<void> {
    const actions = await this.read();
    if (this.stopped) return;
    // A dir that went away is watched afresh once it is back (on SIGHUP): a watch on the old one sees nothing.
    if (actions === null) this.unwatch();
    else this.watchDir();
    const loaded = actions ?? [];
    const fingerprint = JSON.stringify(loaded.map((a) => [a.entry, a.argv]));
    this.actions = loaded;
    if (fingerprint === this.fingerprint) return;
    this.fingerprint = fingerprint;
    this.emit("change");
  }

  /** The dir's actions; null when the dir itself is missing or unreadable. */
  private async read(): Promise<CommandAction[] | null> {
    const dir = this.options.dir;
    let st: Stats;
    try {
      st = await stat(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") this.dirStateIs("missing", () => this.log.info("no actions dir: this host offers no command actions"));
      else this.dirStateIs(`unreadable ${code}`, () => this.log.error({ err: errorMessage(err) }, "actions dir unreadable: no command actions"));
      return null;
    }
    const problem = st.isDirectory() ? ownershipProblem(st) : { field: "file", message: "is not a directory" };
    if (problem) {
      this.dirStateIs(`refused ${problem.message}`, () =>
        this.log.error({ file: dir, field: problem.field, err: problem.message }, "actions dir refused: no command actions"),
      );
      // Still watched: a chmod or chown that puts it right is seen.
      return [];
    }
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, "actions dir unreadable: no command actions");
      return [];
    }
    if (names.length > MAX_FILES) {
      this.log.warn({ files: names.length, read: MAX_FILES }, "actions dir holds more files than any catalogue can; reading the first ones by name");
      names = names.slice(0, MAX_FILES);
    }
    const actions: CommandAction[] = [];
    const byName = new Map<string, string>();
    let refused = 0;
    for (const name of names) {
      const file = join(dir, name);
      const loaded = await this.readFile(file);
      if (!loaded.ok) {
        refused++;
        this.log.error({ file, field: loaded.field, err: loaded.message }, "action definition refused");
        continue;
      }
      const taken = byName.get(loaded.action.entry.name);
      if (taken) {
        refused++;
        this.log.error({ file, field: "name", err: `${loaded.action.entry.name} is already defined by ${taken}` }, "action definition refused");
        continue;
      }
      byName.set(loaded.action.entry.name, file);
      actions.push(loaded.action);
    }
    this.dirStateIs("ok", () => {});
    this.log.info({ actions: actions.length, refused }, "command actions loaded");
    return actions;
  }

  private async readFile(file: string): Promise<{ ok: true; action: CommandAction } | { ok: false; field: string; message: string }> {
    let handle;
    try {
      // Non-blocking, so a FIFO named *.json cannot hang the read; it is then refused as not a regular file.
      handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      return { ok: false, field: "file", message: `cannot be opened (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})` };
    }
    try {
      // The checks look at the file that was opened, not at whatever the name points to a moment later.
      const st = await handle.stat();
      if (!st.isFile()) return { ok: false, field: "file", message: "is not a regular file" };
      const problem = ownershipProblem(st);
      if (problem) return { ok: false, ...problem };
      if (st.size > MAX_DEFINITION_BYTES) return { ok: false, field: "file", message: `is larger than ${MAX_DEFINITION_BYTES} bytes` };
      const buffer = Buffer.alloc(MAX_DEFINITION_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_DEFINITION_BYTES) return { ok: false, field: "file", message: `is larger than ${MAX_DEFINITION_BYTES} bytes` };
      const parsed = parseDefinition(file, buffer.subarray(0, bytesRead).toString("utf8"));
      return parsed.ok ? parsed : { ok: false, field: parsed.error.field, message: parsed.error.reason };
    } catch (err) {
      return { ok: false, field: "file", message: `cannot be read (${errorMessage(err)})` };
    } finally {
      await handle.close();
    }
  }

  private watchDir(): void {
    if (this.watcher || this.stopped) return;
    try {
      this.watcher = watch(this.options.dir, { persistent: false }, () => this.changed());
      this.watcher.on("error", () => {
        // The dir went away (or was replaced): the next reload watches it again.
        this.unwatch();
        this.changed();
      });
    } catch {
      // Missing or unwatchable: SIGHUP still re-reads it.
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  private changed(): void {
    if (this.stopped) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = null;
      void this.reload();
    }, this.options.debounceMs ?? DEBOUNCE_MS);
  }

  private dirStateIs(state: string, logIt: () => void): void {
    if (this.dirState !== state) logIt();
    this.dirState = state;
  }
}
