import { existsSync, readFileSync, renameSync } from "node:fs";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { RegistrySnapshot } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import { Labels } from "../protocol/messages.js";
import { writePrivateFileAtomic } from "./private-file.js";

const STATE_VERSION = 1;

const Reason = z.object({ code: z.string(), message: z.string() });
const State = z.enum(HEALTH_STATES);

const StateFile = z.object({
  version: z.literal(STATE_VERSION),
  savedAt: z.string(),
  workers: z.array(
    z.object({
      id: z.string(),
      hostname: z.string(),
      agentVersion: z.string(),
      labels: Labels,
      platform: z.object({ os: z.string(), arch: z.string(), release: z.string() }),
      address: z.string().nullable(),
      firstSeen: z.number(),
      lastSeen: z.number(),
      state: State,
      reasons: z.array(Reason),
      // Absent in files written before revocation took workers out of the live set.
      certSerial: z.string().nullable().optional(),
    }),
  ),
  events: z.array(
    z.object({
      seq: z.number().int(),
      at: z.number(),
      worker: z.string(),
      from: State.nullable(),
      to: State,
      reasons: z.array(Reason),
    }),
  ),
});

export type LoadResult =
  | { kind: "missing" }
  | { kind: "loaded"; snapshot: RegistrySnapshot }
  | { kind: "corrupt"; error: string; movedTo: string };

/**
 * Reads the state file. A file that is not valid JSON or not our schema (truncated by a crash, edited by hand)
 * is moved aside, never deleted, and the manager starts empty: losing history is better than not starting.
 */
export function loadState(path: string, now = new Date()): LoadResult {
  if (!existsSync(path)) return { kind: "missing" };
  let error: string;
  try {
    const parsed = StateFile.safeParse(JSON.parse(readFileSync(path, "utf8")));
    if (parsed.success) {
      // Reason codes are kept as the text they were written as: another build may know other codes.
      const { workers, events } = parsed.data;
      return { kind: "loaded", snapshot: { workers, events } as RegistrySnapshot };
    }
    const issue = parsed.error.issues[0];
    error = `does not match the state schema at ${issue?.path.join(".") || "top level"}: ${issue?.message}`;
  } catch (err) {
    error = errorMessage(err);
  }
  const movedTo = `${path}.corrupt-${now.toISOString().replace(/[:.]/g, "-")}`;
  renameSync(path, movedTo);
  return { kind: "corrupt", error, movedTo };
}

/** Writes atomically and privately (see writePrivateFileAtomic). */
export function saveState(path: string, snapshot: RegistrySnapshot, now = new Date()): void {
  writePrivateFileAtomic(path, JSON.stringify({ version: STATE_VERSION, savedAt: now.toISOString(), ...snapshot }));
}
