import type { Registry } from "../core/registry.js";
import type { PersistedJobs } from "../jobs/store.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { loadState, saveState } from "./state-file.js";

// A transition is saved within this long; heartbeats only move "last seen", saved on the slow timer.
const SAVE_AFTER_CHANGE_MS = 1000;
// ...or within this many times the last save's duration, if longer: at 10,000 workers a save takes about 50 ms,
// and a reconnect storm changes something every second for half a minute. Saving then keeps to at most a
// fortieth of the event loop instead of a twentieth; a transition is still saved within about 2 s.
const SAVE_GAP_PER_SAVE_MS = 40;
const SAVE_EVERY_MS = 60_000;

/** Keeps the registry's known workers and event history, and the job history, in the state file across restarts. */
export class StateKeeper {
  private debounce: NodeJS.Timeout | null = null;
  /** The file's `jobs` field as loaded, for the job service to restore. */
  loadedJobs: unknown = undefined;
  /** What to save as `jobs`, once the job service is up. */
  jobs: { export(): PersistedJobs } | null = null;
  private lastSaveMs = 0;
  private readonly periodic: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.periodic = setInterval(() => this.save(), SAVE_EVERY_MS);
    this.periodic.unref();
  }

  load(graceMs: number): void {
    const loaded = loadState(this.path);
    if (loaded.kind === "missing") {
      this.log.info({ state: this.path }, "no state file yet; starting with an empty registry");
    } else if (loaded.kind === "corrupt") {
      this.log.error(
        { state: this.path, err: loaded.error, movedTo: loaded.movedTo },
        "state file unreadable; set aside, starting with an empty registry",
      );
    } else {
      this.registry.restore(loaded.snapshot, graceMs);
      this.loadedJobs = loaded.jobs;
      this.log.info(
        { state: this.path, workers: loaded.snapshot.workers.length, events: loaded.snapshot.events.length, graceMs },
        "restored known workers; those that do not reconnect within the grace period become unhealthy",
      );
    }
  }

  changed(): void {
    this.debounce ??= setTimeout(() => this.save(), Math.max(SAVE_AFTER_CHANGE_MS, SAVE_GAP_PER_SAVE_MS * this.lastSaveMs));
  }

  save(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = null;
    const started = performance.now();
    try {
      saveState(this.path, this.registry.export(), new Date(), this.jobs?.export());
      this.lastSaveMs = performance.now() - started;
    } catch (err) {
      // Losing a save is bad, stopping the manager over it is worse: the next change tries again.
      this.log.error({ state: this.path, err: errorMessage(err) }, "could not save the state file");
    }
  }

  stop(): void {
    clearInterval(this.periodic);
    this.save();
  }
}
