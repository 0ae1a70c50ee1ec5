/**
 * Requests in flight across the bridge, under ids the bridge hands out. The stdio client's ids are its own and
 * the manager's session starts afresh with every reconnect, so neither side's ids are used on the other: each
 * forwarded request gets a new number from a counter that never restarts, and an answer finds its way back only
 * through this table, only to the session (generation) it was asked in.
 */
export class InFlight<T extends { generation: number }> {
  private readonly entries = new Map<number, T>();
  private next = 1;

  get size(): number {
    return this.entries.size;
  }

  add(value: T): number {
    const id = this.next++;
    this.entries.set(id, value);
    return id;
  }

  take(id: unknown): T | undefined {
    if (typeof id !== "number") return undefined;
    const value = this.entries.get(id);
    this.entries.delete(id);
    return value;
  }

  /** The id of the first entry `pred` picks. */
  find(pred: (value: T) => boolean): number | undefined {
    for (const [id, value] of this.entries) if (pred(value)) return id;
    return undefined;
  }

  /** Removes and returns every entry of session `generation`. */
  drain(generation: number): Array<[number, T]> {
    const out: Array<[number, T]> = [];
    for (const [id, value] of this.entries) {
      if (value.generation !== generation) continue;
      this.entries.delete(id);
      out.push([id, value]);
    }
    return out;
  }
}
