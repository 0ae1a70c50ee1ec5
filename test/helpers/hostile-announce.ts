/**
 * A host with no certificate at all, announcing on mDNS what it likes: services whose instance name, SRV target or
 * TXT values carry `text`, and `count` made-up workers of fleet `fleet`, all at this host's address. It answers every
 * query for the service type and also announces unprompted every second. Raw multicast-dns: our Publisher would
 * not send these names. Prints one JSON line once it has announced.
 *
 * Usage: hostile-announce.ts <fleet> <count> <text>
 */
import { createRequire } from "node:module";
import { networkInterfaces } from "node:os";

interface Record {
  name: string;
  type: string;
  ttl?: number;
  data: unknown;
}
interface Mdns {
  on(event: "query", fn: (q: { questions: Array<{ name: string; type: string }> }) => void): void;
  on(event: "ready", fn: () => void): void;
  respond(packet: { answers: Record[]; additionals?: Record[] }, cb?: () => void): void;
}

const [fleet, count, text] = process.argv.slice(2) as [string, string, string];
const mdns = (createRequire(import.meta.url)("multicast-dns") as (o: object) => Mdns)({});
const address = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)!.address;
const TYPE = "_mcp-fleet._tcp.local";

interface Fake {
  instance: string;
  host: string;
  txt: Record["data"];
}
const txt = (id: string, ver = "0.1.0") => [`txtvers=1`, `role=worker`, `fleet=${fleet}`, `proto=2`, `id=${id}`, `ver=${ver}`];
const fakes: Fake[] = [
  { instance: text, host: "evil-name.local", txt: txt("evil-name") },
  { instance: "mcp-fleet worker evil-host", host: `${text}.local`, txt: txt("evil-host") },
  { instance: "mcp-fleet worker evil-ver", host: "evil-ver.local", txt: txt("evil-ver", text) },
  ...Array.from({ length: Number(count) }, (_, i) => ({ instance: `mcp-fleet worker fake-${i}`, host: `fake-${i}.local`, txt: txt(`fake-${i}`) })),
];

function records(f: Fake): Record[] {
  const fqdn = `${f.instance}.${TYPE}`;
  return [
    { name: TYPE, type: "PTR", ttl: 120, data: fqdn },
    { name: fqdn, type: "SRV", ttl: 120, data: { port: 9, target: f.host } },
    { name: fqdn, type: "TXT", ttl: 120, data: f.txt },
    { name: f.host, type: "A", ttl: 120, data: address },
  ];
}

/** Ten services a packet: the browser reads each service's SRV and TXT from the packet that carries its PTR. */
function announceAll(): void {
  for (let i = 0; i < fakes.length; i += 10) mdns.respond({ answers: fakes.slice(i, i + 10).flatMap(records) });
}

mdns.on("query", (q) => {
  if (q.questions.some((x) => x.name.toLowerCase() === TYPE.toLowerCase())) announceAll();
});
mdns.on("ready", () => {
  announceAll();
  console.log(JSON.stringify({ event: "announced", services: fakes.length, address }));
  setInterval(announceAll, 1000);
});
