import { lookup } from "node:dns/promises";
import { RESOLVE_ADDRESSES_MAX, type ResolveResult } from "../../../protocol/diagnostics.js";
import { HOSTNAME_PATTERN, toErrorCode, toToken } from "../../../protocol/text.js";
import { builtinEntry, DiagnosticError, within, type Builtin } from "./builtin.js";
import { fitList } from "./fit.js";

/** getaddrinfo cannot be cancelled; past this a lookup is reported as TIMEOUT (it goes on in the thread pool). */
const LOOKUP_MAX_MS = 10_000;

export const resolve: Builtin = {
  entry: builtinEntry({
    name: "resolve",
    description: "How this host resolves a name through its system resolver (/etc/hosts, DNS, ...): the addresses its programs would use.",
    params: { name: { type: "string", pattern: HOSTNAME_PATTERN.source.slice(1, -1), maxLength: 253, description: "a host name" } },
    timeoutMs: 15_000,
    concurrency: 4,
  }),

  async run(args, ctx) {
    const name = String(args.name);
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    let found: Array<{ address: string; family: number }>;
    try {
      found = await within(lookup(name, { all: true, order: "verbatim" }), Math.min(LOOKUP_MAX_MS, ctx.timeoutMs), ctx.signal, "the lookup");
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const code = err instanceof DiagnosticError ? err.code : toErrorCode((err as NodeJS.ErrnoException).code, "LOOKUP_FAILED");
      return { name: toToken(name, 253), addresses: [], omitted: 0, error: code, durationMs: elapsed() } satisfies ResolveResult;
    }
    const addresses = found
      .filter((a) => a.family === 4 || a.family === 6)
      .map((a) => ({ address: toToken(a.address, 64), family: a.family as 4 | 6 }));
    const listed = addresses.slice(0, RESOLVE_ADDRESSES_MAX);
    const durationMs = elapsed();
    return fitList(listed, (kept, omitted): ResolveResult => ({
      name: toToken(name, 253),
      addresses: [...kept],
      omitted: omitted + addresses.length - listed.length,
      error: null,
      durationMs,
    }));
  },
};
