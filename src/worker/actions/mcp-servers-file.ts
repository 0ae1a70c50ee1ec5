import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { duration } from "../../config/duration.js";
import { errorMessage } from "../../errors.js";
import type { Logger } from "../../log.js";
import { MAX_ACTION_TIMEOUT_MS } from "../../protocol/actions.js";

/*
 * The host's list of MCP servers, in the `mcpServers` shape of Claude Desktop's config so an existing file can be
 * copied as it is (other top-level keys are ignored). It names programs the agent runs, so like the action files it
 * must be owned by root or the agent's own user and writable by no one else.
 */

/** A server's name is the first half of its tools' action names (`<server>.<tool>`). */
export const SERVER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const MAX_SERVERS = 32;
const MAX_FILE_BYTES = 1024 * 1024;

export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;

const noNul = (s: string) => !s.includes("\0");

export const ServerConfig = z
  .object({
    /** Claude Code writes it; stdio is the only transport a host server can use. */
    type: z.literal("stdio").optional(),
    command: z.string().min(1).max(4096).refine(noNul, "must not contain a NUL character"),
    args: z.array(z.string().max(4096).refine(noNul, "must not contain a NUL character")).max(256).default([]),
    /** Added to the SDK's small default environment (HOME, LOGNAME, PATH, SHELL, TERM, USER). */
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "must be an environment variable name"), z.string().max(32_768).refine(noNul, "must not contain a NUL character"))
      .default({}),
    /** The server's working directory; the agent's own when left out, as Claude Desktop does. */
    cwd: z.string().startsWith("/", "must be an absolute path").max(4096).optional(),
    /** Each of its tools' default and longest timeout. */
    timeout: duration({ min: 100, max: MAX_ACTION_TIMEOUT_MS }).default(60_000),
    /** Stopped after this long without a call, started again by the next one. */
    idleTimeout: duration({ min: 1000, max: 86_400_000 }).default(DEFAULT_IDLE_TIMEOUT_MS),
  })
  .strict();
export type ServerConfig = z.infer<typeof ServerConfig>;

const ServersFile = z.looseObject({ mcpServers: z.record(z.string(), z.unknown()).default({}) });

/**
 * The servers the file defines, by name. A missing file means none; a file that cannot be trusted or parsed means
 * none, logged; a bad server entry is refused with its field named and the others still load.
 */
export async function readServersFile(file: string, log: Logger): Promise<Map<string, ServerConfig>> {
  const servers = new Map<string, ServerConfig>();
  let text: string;
  try {
    const problem = (await untrusted(file)) ?? (await untrusted(dirname(file), true));
    if (problem) {
      log.error({ file, err: problem }, "MCP servers file refused");
      return servers;
    }
    if ((await stat(file)).size > MAX_FILE_BYTES) {
      log.error({ file, err: `over ${MAX_FILE_BYTES} bytes` }, "MCP servers file refused");
      return servers;
    }
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") log.info({ file }, "no MCP servers file; hosting no MCP servers");
    else log.error({ file, err: errorMessage(err) }, "MCP servers file unreadable");
    return servers;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    log.error({ file, err: errorMessage(err) }, "MCP servers file is not JSON");
    return servers;
  }
  const top = ServersFile.safeParse(json);
  if (!top.success) {
    const issue = top.error.issues[0];
    log.error({ file, field: fieldName(issue?.path ?? []), err: issue?.message }, "MCP servers file refused");
    return servers;
  }
  for (const [name, raw] of Object.entries(top.data.mcpServers)) {
    if (!SERVER_NAME_PATTERN.test(name)) {
      log.warn({ file, server: name.slice(0, 80), field: "mcpServers", err: "server name must be 1–64 of A-Z a-z 0-9 _ -" }, "MCP server refused");
      continue;
    }
    if (servers.size >= MAX_SERVERS) {
      log.warn({ file, server: name, field: "mcpServers", err: `more than ${MAX_SERVERS} servers` }, "MCP server refused");
      continue;
    }
    const parsed = ServerConfig.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue?.code === "unrecognized_keys" ? [...issue.path, issue.keys[0] ?? ""] : (issue?.path ?? []);
      log.warn({ file, server: name, field: fieldName(["mcpServers", name, ...path]), err: issue?.message }, "MCP server refused");
      continue;
    }
    servers.set(name, parsed.data);
  }
  return servers;
}

function fieldName(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === "number" ? `[${p}]` : String(p))).join(".").replace(/\.\[/g, "[");
}

/**
 * Why the file (or its directory) could be changed by someone other than root or this agent, or null. A directory
 * with the sticky bit (/tmp) is allowed: there only a file's owner can replace it.
 */
async function untrusted(path: string, isDir = false): Promise<string | null> {
  const st = await stat(path);
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== uid) return `${path} is owned by uid ${st.uid}, neither root nor this agent (uid ${uid})`;
  const sticky = isDir && (st.mode & 0o1000) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky) return `${path} is writable by its group or others (mode ${(st.mode & 0o777).toString(8)})`;
  return null;
}
