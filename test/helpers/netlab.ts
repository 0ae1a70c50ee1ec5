import { execFileSync } from "node:child_process";
import { Proc } from "./processes.js";

/**
 * A LAN on one machine: a "switch" namespace holding a bridge, and one network namespace per host, each with its
 * own address on 10.213.0.0/24, its own host name (a UTS namespace per process) and a route for multicast, so mDNS
 * crosses between hosts as on a real LAN. Nothing is attached to the machine's own namespace, so no test traffic
 * leaves the lab. `destroy` (and, failing that, process exit) removes every namespace.
 */

const SUBNET = "10.213.0";

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Why lab tests cannot run here, or null if they can. */
export function labUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root for ip netns (CI runs as root)";
  try {
    ip("netns", "list");
    execFileSync("unshare", ["--version"], { stdio: "ignore" });
  } catch {
    return "needs iproute2 (ip netns) and util-linux (unshare)";
  }
  return null;
}

export interface LabHost {
  name: string;
  ns: string;
  address: string;
}

const liveLabs = new Set<NetLab>();
process.on("exit", () => {
  for (const lab of liveLabs) lab.destroySync();
});

export class NetLab {
  readonly hosts = new Map<string, LabHost>();
  private readonly prefix: string;
  private readonly sw: string;
  private next = 10;

  private constructor() {
    this.prefix = `mcpf${process.pid}`;
    this.sw = `${this.prefix}-sw`;
  }

  static create(hostNames: string[]): NetLab {
    const lab = new NetLab();
    liveLabs.add(lab);
    try {
      ip("netns", "add", lab.sw);
      ip("-n", lab.sw, "link", "add", "br0", "type", "bridge");
      ip("-n", lab.sw, "link", "set", "br0", "up");
      for (const name of hostNames) lab.addHost(name);
    } catch (err) {
      lab.destroySync();
      throw err;
    }
    return lab;
  }

  addHost(name: string): LabHost {
    const n = this.next++;
    const host: LabHost = { name, ns: `${this.prefix}-${name}`, address: `${SUBNET}.${n}` };
    ip("netns", "add", host.ns);
    ip("link", "add", "eth0", "netns", host.ns, "type", "veth", "peer", "name", `p${n}`, "netns", this.sw);
    ip("-n", this.sw, "link", "set", `p${n}`, "master", "br0", "up");
    ip("-n", host.ns, "link", "set", "lo", "up");
    ip("-n", host.ns, "addr", "add", `${host.address}/24`, "dev", "eth0");
    ip("-n", host.ns, "link", "set", "eth0", "up");
    ip("-n", host.ns, "route", "add", "224.0.0.0/4", "dev", "eth0");
    this.hosts.set(name, host);
    return host;
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no lab host ${name}`);
    return h;
  }

  /** The command prefix that runs a program on `host`, under its own host name. */
  launcher(name: string): string[] {
    const h = this.host(name);
    return ["ip", "netns", "exec", h.ns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', name];
  }

  /** `mcp-fleet ...args` on `host`, or another program. */
  run(hostName: string, procName: string, args: string[], env: Record<string, string> = {}, program?: string[]): Proc {
    return new Proc(procName, args, env, this.launcher(hostName), program);
  }

  /** One of the TypeScript helpers in test/helpers, on `host`. */
  script(hostName: string, procName: string, script: string, args: string[]): Proc {
    const path = new URL(`./${script}`, import.meta.url).pathname;
    return this.run(hostName, procName, args, {}, [process.execPath, "--import", "tsx", path]);
  }

  link(hostName: string, state: "up" | "down"): void {
    ip("-n", this.host(hostName).ns, "link", "set", "eth0", state);
  }

  destroySync(): void {
    for (const h of this.hosts.values()) {
      try {
        ip("netns", "del", h.ns);
      } catch {
        // already gone
      }
    }
    try {
      ip("netns", "del", this.sw);
    } catch {
      // already gone
    }
    liveLabs.delete(this);
  }
}
