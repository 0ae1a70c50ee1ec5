import si from "systeminformation";
import { LISTENING_PORTS_MAX, type ListeningPortsResult } from "../../../protocol/diagnostics.js";
import { toDisplay, toToken } from "../../../protocol/text.js";
import { builtinEntry, singleFlight, within, type Builtin } from "./builtin.js";
import { fitList } from "./fit.js";

type Port = ListeningPortsResult["ports"][number];

// netstat (or ss) through a shell, parsed in this thread: concurrent runs share one call.
const listConnections = singleFlight(() => si.networkConnections());

export const listeningPorts: Builtin = {
  entry: builtinEntry({
    name: "listening_ports",
    description: "The TCP sockets listening on this host: address, port, and the owning process where the agent may see it.",
    params: {},
    timeoutMs: 15_000,
    concurrency: 2,
  }),

  async run(_args, ctx) {
    const connections = await within(listConnections(), ctx.timeoutMs, ctx.signal, "the connection list");
    const seen = new Set<string>();
    const ports: Port[] = [];
    for (const c of connections) {
      if (c.state !== "LISTEN") continue;
      const port = Number(c.localPort);
      if (!Number.isInteger(port) || port < 0 || port > 65535) continue;
      const row: Port = {
        protocol: toToken(String(c.protocol ?? ""), 8),
        // ss writes IPv6 addresses in brackets, netstat without.
        address: toToken(String(c.localAddress ?? "").replace(/^\[(.*)\]$/, "$1"), 64),
        port,
        pid: Number.isSafeInteger(c.pid) && c.pid > 0 && c.pid < 2 ** 31 ? c.pid : null,
        process: c.process ? toDisplay(String(c.process), 64) : null,
      };
      const key = `${row.protocol} ${row.address} ${row.port} ${row.pid}`;
      if (seen.has(key)) continue;
      seen.add(key);
      ports.push(row);
    }
    ports.sort((a, b) => a.port - b.port || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const listed = ports.slice(0, LISTENING_PORTS_MAX);
    return fitList(listed, (kept, omitted): ListeningPortsResult => ({ ports: [...kept], omitted: omitted + ports.length - listed.length }));
  },
};
