import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import type { Command } from "commander";
import { z } from "zod";
import { connectToManager } from "../client/connect.js";
import { fields, flag } from "../config/load.js";
import { errorMessage, FleetError, isFleetError } from "../errors.js";
import { MCP_PATH } from "../manager/mcp-http.js";
import { VERSION } from "../version.js";
import { duration } from "./common.js";
import { EXIT } from "./operator-views.js";

// How the operator commands reach the manager: one set of flags, one connection, one way of telling "cannot reach
// it" (exit 3) from "bad settings" (exit 64).

export const DEFAULT_MANAGER = "https://localhost:7443";
const DEFAULT_PORT = "7443";

/** An operator command's end: the exit code and, if any, the one line to print on stderr. */
export class OperatorExit extends Error {
  constructor(
    readonly exitCode: number,
    message = "",
  ) {
    super(message);
    this.name = "OperatorExit";
  }
}

export function addConnectionFlags(cmd: Command): Command {
  return cmd
    .addOption(flag("--manager <url>", "the manager's address (https://host:port; /mcp is added; host alone means port 7443)", DEFAULT_MANAGER))
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "your operator or viewer certificate (default: the only one in operators/ beside --ca, else in viewers/)"))
    .addOption(flag("--key <file>", "its private key (default: <name>-key.pem beside --cert)"))
    .addOption(flag("--timeout <duration>", "how long the manager has to answer before the command gives up (exit 3)", "10s"));
}

export const connectionFields = {
  manager: z.string().min(1),
  ca: fields.path,
  cert: fields.optionalPath,
  key: fields.optionalPath,
  timeout: duration({ min: 100, max: 600_000 }),
};
export interface ConnectionSettings {
  manager: string;
  ca: string;
  cert?: string;
  key?: string;
  timeout: number;
}

/**
 * The /mcp URL of `--manager`. A worker's `wss://host:port` (MCP_FLEET_MANAGER may be set for the agent in the
 * same shell) names the same port, so it is taken as https; a bare `host` or `host:port` is https too.
 */
export function managerUrl(text: string): URL {
  let t = text.trim();
  if (!t.includes("://")) t = `https://${/:\d+$/.test(t) ? t : `${t}:${DEFAULT_PORT}`}`;
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw new FleetError("E_CONFIG", `--manager ${JSON.stringify(text)} is not a URL such as ${DEFAULT_MANAGER}`);
  }
  if (url.protocol === "wss:") url.protocol = "https:";
  if (url.protocol !== "https:") throw new FleetError("E_CONFIG", `--manager ${JSON.stringify(text)}: the manager speaks https only`);
  if (url.pathname === "/" || url.pathname === "") url.pathname = MCP_PATH;
  return url;
}

/** `ops/alice.pem` → `ops/alice-key.pem`, as `certs issue` writes them. */
export const keyBeside = (cert: string) => cert.replace(/(\.pem)?$/, "-key.pem");

/** The one certificate in operators/ (else viewers/) beside the CA: `certs issue --role operator <name>` writes there. */
export function defaultCertificate(ca: string): string {
  const base = dirname(ca);
  for (const sub of ["operators", "viewers"]) {
    const dir = join(base, sub);
    if (!existsSync(dir)) continue;
    const certs = readdirSync(dir).filter((f) => f.endsWith(".pem") && !f.endsWith("-key.pem")).sort();
    if (certs.length === 1) return join(dir, certs[0]!);
    if (certs.length > 1) throw new FleetError("E_CONFIG", `${dir} holds ${certs.length} certificates (${certs.join(", ")}): pass --cert (and --key)`);
  }
  throw new FleetError("E_CONFIG", `no operator or viewer certificate in ${join(base, "operators")} or ${join(base, "viewers")}: pass --cert and --key (mcp-fleet certs issue --role operator <name> makes one)`);
}

/** Rejects after `ms` with the exit for an unreachable manager. */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OperatorExit(EXIT.unreachable, `${what}: no answer within ${ms} ms (--timeout)`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Why a connection failed, from undici's error and its causes: "connect ECONNREFUSED 127.0.0.1:7443" and the like. */
export function connectionFailure(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    const text = typeof code === "string" && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
    if (!parts.includes(text)) parts.push(text);
  }
  return parts.length > 0 ? parts.join(": ") : errorMessage(err);
}

/**
 * A connected SDK client, or an OperatorExit: 64 for settings that cannot work (no certificate, a worker's
 * certificate, a bad URL), 3 when the manager cannot be reached or refuses the connection.
 */
export async function openClient(s: ConnectionSettings, capabilities: ClientCapabilities = {}): Promise<Client> {
  const url = managerUrl(s.manager);
  const cert = s.cert ?? defaultCertificate(s.ca);
  const key = s.key ?? keyBeside(cert);
  const where = `cannot reach the manager at ${url.href}`;
  try {
    return await deadline(connectToManager({ url, ca: s.ca, cert, key, clientInfo: { name: "mcp-fleet-cli", version: VERSION }, capabilities }), s.timeout, where);
  } catch (err) {
    if (err instanceof OperatorExit) throw err;
    if (isFleetError(err, "E_CERT") || isFleetError(err, "E_CONFIG")) throw new OperatorExit(EXIT.usage, err.message);
    throw new OperatorExit(EXIT.unreachable, `${where}: ${connectionFailure(err)}`);
  }
}

/** A request after connecting; a manager gone mid-way, or too slow, is unreachable too. */
export async function ask<T>(s: ConnectionSettings, what: string, call: () => Promise<T>, timeoutMs = s.timeout): Promise<T> {
  try {
    return await deadline(call(), timeoutMs, what);
  } catch (err) {
    if (err instanceof OperatorExit) throw err;
    throw new OperatorExit(EXIT.unreachable, `${what}: ${connectionFailure(err)}`);
  }
}
