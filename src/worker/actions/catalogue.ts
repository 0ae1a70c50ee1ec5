import type { Logger } from "../../log.js";
import { CatalogEntry, catalogHash, MAX_CATALOG_ENTRIES, type ListResult } from "../../protocol/actions.js";
import type { Builtin } from "./builtins/index.js";
import type { CommandAction } from "./definition.js";

/** What runs an entry of the catalogue. */
export type ActionSource =
  | { kind: "builtin"; entry: CatalogEntry; builtin: Builtin }
  | { kind: "command"; entry: CatalogEntry; action: CommandAction }
  | { kind: "mcp"; entry: CatalogEntry };

export interface Catalogue {
  /** Sorted by name, as sent and as hashed. */
  entries: CatalogEntry[];
  hash: string;
  byName: ReadonlyMap<string, ActionSource>;
}

/** One page of actions.list must fit a frame with room to spare; an entry too large for a page alone is left out. */
export const MAX_LIST_PAGE_BYTES = 48 * 1024;
const MAX_ENTRY_BYTES = 40 * 1024;

/**
 * The host's catalogue from its three sources. Each entry is held to the wire's CatalogEntry schema and stored in
 * its parsed form, so the hash here is the hash the manager computes over what it fetches. A name defined twice
 * keeps its first definition (built-ins, then command actions, then MCP tools); past MAX_CATALOG_ENTRIES, the
 * first ones by name are kept.
 */
export function buildCatalogue(sources: readonly ActionSource[], log: Logger): Catalogue {
  const byName = new Map<string, ActionSource>();
  for (const source of sources) {
    const parsed = CatalogEntry.safeParse(source.entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      log.error({ action: String(source.entry.name).slice(0, 140), kind: source.kind, field: issue?.path.join("."), err: issue?.message }, "catalogue entry refused");
      continue;
    }
    const entry = parsed.data;
    if (Buffer.byteLength(JSON.stringify(entry)) > MAX_ENTRY_BYTES) {
      log.error({ action: entry.name, kind: source.kind, err: `definition over ${MAX_ENTRY_BYTES} bytes` }, "catalogue entry refused");
      continue;
    }
    const taken = byName.get(entry.name);
    if (taken) {
      log.warn({ action: entry.name, kind: source.kind, keeps: taken.kind }, "an action of this name is already defined; keeping the first");
      continue;
    }
    byName.set(entry.name, { ...source, entry } as ActionSource);
  }
  let names = [...byName.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length > MAX_CATALOG_ENTRIES) {
    log.warn({ defined: names.length, kept: MAX_CATALOG_ENTRIES }, "more actions than a catalogue holds; keeping the first by name");
    for (const name of names.slice(MAX_CATALOG_ENTRIES)) byName.delete(name);
    names = names.slice(0, MAX_CATALOG_ENTRIES);
  }
  const entries = names.map((n) => byName.get(n)!.entry);
  return { entries, hash: catalogHash(entries), byName };
}

/** The page of actions.list that begins at `cursor`: as many entries as fit MAX_LIST_PAGE_BYTES, at least one. */
export function listPage(catalogue: Catalogue, cursor = 0): ListResult {
  const page: CatalogEntry[] = [];
  let bytes = 200;
  let i = Math.min(cursor, catalogue.entries.length);
  for (; i < catalogue.entries.length; i++) {
    const entry = catalogue.entries[i]!;
    const size = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (page.length > 0 && bytes + size > MAX_LIST_PAGE_BYTES) break;
    page.push(entry);
    bytes += size;
  }
  return { hash: catalogue.hash, total: catalogue.entries.length, entries: page, next: i < catalogue.entries.length ? i : null };
}
