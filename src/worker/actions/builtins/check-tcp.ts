import { connect } from "node:net";
import { HOSTNAME_PATTERN, toErrorCode, toToken } from "../../../protocol/text.js";
import type { CheckTcpResult } from "../../../protocol/diagnostics.js";
import { builtinEntry, type Builtin } from "./builtin.js";

/** A host name (RFC 1123, which takes IPv4 literals too) or an IPv6 literal. */
export const HOST_PATTERN = `${HOSTNAME_PATTERN.source.slice(1, -1)}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`;

export const checkTcp: Builtin = {
  entry: builtinEntry({
    name: "check_tcp",
    description: "Whether this host can open a TCP connection to host:port, how long it took, or why not (refused, timeout, no such name).",
    params: {
      host: { type: "string", pattern: HOST_PATTERN, maxLength: 253, description: "a host name or IP address" },
      port: { type: "integer", minimum: 1, maximum: 65535 },
      timeout: { type: "integer", minimum: 100, maximum: 30_000, default: 3000, required: false, description: "milliseconds to wait for the connection" },
    },
    timeoutMs: 35_000,
    concurrency: 4,
  }),

  run(args, ctx) {
    const host = String(args.host);
    const port = Number(args.port);
    const timeout = Math.min(typeof args.timeout === "number" ? args.timeout : 3000, ctx.timeoutMs);
    return checkTcpEndpoint(host, port, timeout, ctx.signal);
  },
};

/** One connection attempt (name lookup included), closed as soon as it is made. */
export function checkTcpEndpoint(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<CheckTcpResult> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host, port });
    const answer = (error: string | null) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      const reachable = error === null;
      const address = reachable && socket.remoteAddress ? toToken(socket.remoteAddress, 64) : null;
      socket.destroy();
      resolve({
        host: toToken(host, 253),
        port,
        reachable,
        latencyMs: reachable ? Math.round((performance.now() - started) * 10) / 10 : null,
        address,
        error,
      });
    };
    const onAbort = () => {
      clearTimeout(timer);
      socket.destroy();
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => answer("TIMEOUT"), timeoutMs);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("connect", () => answer(null));
    socket.once("error", (err: NodeJS.ErrnoException) => answer(toErrorCode(err.code, "CONNECT_FAILED")));
  });
}
