import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";

/**
 * A minimal Debian host with systemd as its PID 1, in a systemd-nspawn container that shares this machine's
 * network (so a manager on 127.0.0.1 is reachable from it). The root is built once with debootstrap and kept
 * under /var/tmp; each boot runs on a throw-away copy of it (`--ephemeral`), so runs never see each other's
 * state. The root has no libnss-systemd, like minimal and container images: a DynamicUser there has no passwd
 * entry and no home directory. It has polkit, for the privileged-action recipe (polkitd needs a logind, which
 * libpam-systemd provides), and procps, as every standard install has.
 *
 * The root is built in CI's setup (test/helpers/build-systemd-root.ts, from Debian's mirror), never by a test:
 * tests talk to nothing beyond this machine.
 */

const run = promisify(execFile);

export const SYSTEMD_ROOT = "/var/tmp/mcp-fleet-systemd-root";
const SUITE = "bookworm";
const PACKAGES = ["systemd", "systemd-sysv", "dbus", "libpam-systemd", "polkitd", "procps"];
/** Packages added after roots were first built, each with a file that shows it is installed. */
const LATER_PACKAGES: Array<[pkg: string, marker: string]> = [
  ["libpam-systemd", "usr/lib/x86_64-linux-gnu/security/pam_systemd.so"],
  ["polkitd", "usr/lib/polkit-1/polkitd"],
  // ps, which the processes diagnostic reads through systeminformation; every standard Debian install has it.
  ["procps", "usr/bin/ps"],
];

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

/** A root debootstrap finished: it removes its own /debootstrap work directory as its last step. */
function rootBuilt(dir: string): boolean {
  return existsSync(join(dir, "usr/lib/systemd/systemd")) && existsSync(join(dir, "usr/bin/dbus-daemon")) && !existsSync(join(dir, "debootstrap"));
}

function missingPackages(dir: string): string[] {
  return LATER_PACKAGES.filter(([, marker]) => !existsSync(join(dir, marker))).map(([pkg]) => pkg);
}

function rootComplete(dir: string): boolean {
  return rootBuilt(dir) && missingPackages(dir).length === 0;
}

/** Why a real systemd cannot be booted here, or null if it can. */
export function systemdUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root to boot a systemd-nspawn container (CI runs as root)";
  for (const cmd of ["systemd-nspawn", "nsenter"]) if (!has(cmd)) return `needs ${cmd} (apt-get install systemd-container util-linux)`;
  if (!rootComplete(SYSTEMD_ROOT)) return `${SYSTEMD_ROOT} is not built or lacks packages: node --import tsx test/helpers/build-systemd-root.ts (CI's setup runs it)`;
  return null;
}

/** Why the container root cannot be built here, or null if it can. */
export function rootUnbuildable(): string | null {
  if (process.getuid?.() !== 0) return "needs root";
  if (!has("debootstrap")) return "needs debootstrap (apt-get install debootstrap)";
  return null;
}

/**
 * The container root, built when missing (about 50 s to a few minutes, from Debian's mirror); one built before
 * packages were added gets them with apt-get (seconds). Either happens in a directory of its own that is renamed
 * into place, so an interrupted build never leaves a half root behind.
 */
export async function ensureSystemdRoot(log: (line: string) => void, root = SYSTEMD_ROOT): Promise<string> {
  if (rootComplete(root)) return root;
  if (rootBuilt(root)) return addPackages(root, missingPackages(root), log);
  if (existsSync(root)) {
    log(`${root} is incomplete; building it again`);
    await rm(root, { recursive: true, force: true });
  }
  // Builds whose process is gone (killed mid-way) are removed; one still running belongs to another test run.
  for (const name of await readdir(dirname(root))) {
    const pid = name.startsWith(`${basename(root)}.build-`) ? Number(name.slice(basename(root).length + ".build-".length)) : NaN;
    if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) await rm(join(dirname(root), name), { recursive: true, force: true });
  }
  const building = `${root}.build-${process.pid}`;
  const started = performance.now();
  log(`building ${root} with debootstrap (once; it is kept for later runs)`);
  try {
    await run("debootstrap", ["--variant=minbase", `--include=${PACKAGES.join(",")}`, SUITE, building], { maxBuffer: 64 << 20, timeout: 15 * 60_000 });
    if (!rootComplete(building)) throw new Error(`debootstrap finished but ${building} is not a complete root`);
    if (rootComplete(root)) return root; // another run finished first
    await rename(building, root);
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  log(`built ${root} in ${Math.round((performance.now() - started) / 1000)} s`);
  return root;
}

async function addPackages(root: string, packages: string[], log: (line: string) => void): Promise<string> {
  const building = `${root}.build-${process.pid}`;
  const started = performance.now();
  log(`adding ${packages.join(", ")} to ${root}`);
  try {
    await run("cp", ["-a", root, building]);
    // Maintainer scripts that try to start daemons fail harmlessly in a chroot: nothing runs there.
    await run("chroot", [building, "apt-get", "install", "-y", "-q", "--no-install-recommends", ...packages], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 64 << 20,
      timeout: 10 * 60_000,
    }).catch(async (err: unknown) => {
      // apt's exit code also counts a maintainer script's failure; what counts is whether the packages are there.
      if (!rootComplete(building)) throw err;
    });
    await run("chroot", [building, "apt-get", "clean"]);
    if (!rootComplete(building)) throw new Error(`apt-get finished but ${building} still lacks ${missingPackages(building).join(", ")}`);
    await rm(root, { recursive: true, force: true });
    await rename(building, root);
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  log(`added them in ${Math.round((performance.now() - started) / 1000)} s`);
  return root;
}

const live = new Set<Container>();
process.on("exit", () => {
  for (const c of live) c.killSync();
});

export interface Bind {
  host: string;
  inside: string;
}

/** One booted container. `poweroff` (or, failing it, process exit) stops it and removes its copy of the root. */
export class Container {
  /** nspawn's own output (the container's console), for diagnostics. */
  readonly console: string[] = [];
  private pid1 = 0;
  /** Where `--ephemeral` put this boot's copy of the root. */
  private copy: string | null = null;
  private readonly exited: Promise<void>;

  private constructor(private readonly nspawn: ChildProcess) {
    live.add(this);
    nspawn.stdout!.on("data", (d: Buffer) => this.console.push(d.toString()));
    nspawn.stderr!.on("data", (d: Buffer) => this.console.push(d.toString()));
    this.exited = new Promise((resolve) => nspawn.once("exit", () => resolve()));
    void this.exited.then(() => live.delete(this));
  }

  /**
   * Boots `root` with systemd as PID 1. This machine's node (and npm beside it) is bound in read-only at
   * /usr/bin/node and /usr/lib/node_modules, as a package would install them. Resolves once systemd has finished
   * starting up.
   */
  static async boot(root: string, binds: Bind[], timeoutMs = 60_000): Promise<Container> {
    const node = process.execPath;
    const npmModules = join(dirname(dirname(node)), "lib", "node_modules");
    const args = [
      "--register=no", "--keep-unit", "-q", "--ephemeral", "-D", root,
      `--bind-ro=${node}:/usr/bin/node`,
      `--bind-ro=${npmModules}:/usr/lib/node_modules`,
      ...binds.map((b) => `--bind-ro=${b.host}:${b.inside}`),
      "-b",
    ];
    const c = new Container(spawn("systemd-nspawn", args, { stdio: ["ignore", "pipe", "pipe"] }));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (c.nspawn.exitCode !== null || c.nspawn.signalCode !== null) throw new Error(`systemd-nspawn exited: ${c.console.join("")}`);
      if (performance.now() > deadline) {
        await c.poweroff();
        throw new Error(`the container did not finish booting within ${timeoutMs} ms: ${c.console.join("").slice(-2000)}`);
      }
      // nspawn's first child may still be its short-lived outer helper; the container's init runs systemd.
      const pid = childOf(c.nspawn.pid!);
      c.pid1 = pid && comm(pid) === "systemd" ? pid : 0;
      if (c.pid1) {
        const state = await c.sh("systemctl is-system-running || true").catch(() => "");
        if (/^(running|degraded)$/m.test(state)) break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    // findmnt prints e.g. "/dev/vda[/var/tmp/.#machine.mcp-fleet-systemd-root1a2b...]".
    const source = await c.sh("findmnt -no SOURCE /");
    c.copy = /\[(\/var\/tmp\/[^\]]+)\]/.exec(source)?.[1] ?? null;
    return c;
  }

  /** Runs a shell command inside the container, as root in all its namespaces; resolves with its stdout. */
  async sh(command: string, timeoutMs = 120_000): Promise<string> {
    const { stdout } = await run("nsenter", ["-t", String(this.pid1), "-a", "sh", "-c", command], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  }

  /** Like `sh`, but never rejects: exit code and both outputs. */
  async try(command: string, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run("nsenter", ["-t", String(this.pid1), "-a", "sh", "-c", command], { timeout: timeoutMs, maxBuffer: 16 << 20 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
    }
  }

  /** A clean shutdown of the container's systemd; nspawn is killed if it takes longer than `timeoutMs`. */
  async poweroff(timeoutMs = 20_000): Promise<void> {
    if (this.nspawn.exitCode === null && this.nspawn.signalCode === null) {
      if (this.pid1) await this.try("systemctl poweroff", 5000);
      const timer = setTimeout(() => this.killSync(), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.removeCopy();
  }

  /** Last resort (process exit, a hung shutdown): kill the container's init, which takes everything in it along. */
  killSync(): void {
    for (const pid of [this.pid1, this.nspawn.pid]) {
      try {
        if (pid) process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    // Bounded: a killed process is gone within milliseconds; only then may its copy of the root be removed.
    for (let i = 0; i < 50 && isAlive(this.nspawn.pid); i++) spawnSync("sleep", ["0.1"]);
    this.removeCopy();
  }

  private removeCopy(): void {
    // nspawn removes its copy on a clean exit; after a kill it may still be there.
    if (!this.copy || !existsSync(this.copy)) return;
    if (isAlive(this.nspawn.pid)) return;
    rmSync(this.copy, { recursive: true, force: true });
    rmSync(join(dirname(this.copy), `.#${this.copy.split("/").at(-1)}.lck`), { force: true });
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Running, not merely a zombie its parent (this process) has yet to reap. */
function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The first child of `pid` (the container's PID 1 is the nspawn process's child), or 0. */
function childOf(pid: number): number {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    return Number(children[0] ?? 0);
  } catch {
    try {
      return Number(execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" }).trim().split("\n")[0] ?? 0);
    } catch {
      return 0;
    }
  }
}
