import { existsSync, readFileSync, renameSync } from "node:fs";
import { z } from "zod";
import { HEALTH_STATES } from "../core/health.js";
import type { RegistrySnapshot } from "../core/registry.js";
import { errorMessage } from "../errors.js";
import type { PersistedJobs } from "../jobs/store.js";
import { Hello } from "../protocol/messages.js";
import { Hostname, LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from "../protocol/text.js";
import { writePrivateFileAtomic } from "./private-file.js";

/**
 * Version 2 is written by builds that hold worker text to its forms at the wire (protocol 2). A version-1 file may
 * hold what an older manager took from its workers as free text: it is read, and its claims and reason messages
 * are made to fit before anything of it reaches the registry (see `fromVersion1`).
 */
const STATE_VERSION = 2;

const Reason = z.object({ code: z.string(), message: z.string() });
const State = z.enum(HEALTH_STATES);

const StateFile = z.object({
  version: z.union([z.literal(1), z.literal(STATE_VERSION)]),
  savedAt: z.string(),
  workers: z.array(
    z.object({
      id: z.string(),
      hostname: z.string(),
      agentVersion: z.string(),
      // Checked per label below, so one label an older build allowed does not cost the whole file.
      labels: z.record(z.string(), z.string()),
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
  // The job history (src/jobs/store.ts checks it, job by job): absent in files written before jobs existed, and
  // a job that does not fit costs that job, not the registry.
  jobs: z.unknown().optional(),
});

export type LoadResult =
  | { kind: "missing" }
  | { kind: "loaded"; snapshot: RegistrySnapshot; jobs?: unknown }
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
      const data = parsed.data.version === STATE_VERSION ? parsed.data : fromVersion1(parsed.data);
      const workers = data.workers.map((w) => ({ ...w, ...fittedClaims(w) }));
      const loaded: LoadResult = { kind: "loaded", snapshot: { workers, events: data.events } as RegistrySnapshot };
      if (parsed.data.jobs !== undefined) loaded.jobs = parsed.data.jobs;
      return loaded;
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

type Parsed = z.infer<typeof StateFile>;
type SavedWorker = Parsed["workers"][number];

/** A worker's own claims as this build's hello would have allowed them: what does not fit is left out or unknown. */
function fittedClaims(w: SavedWorker): Pick<SavedWorker, "hostname" | "agentVersion" | "labels" | "platform"> {
  const fits = (schema: z.ZodType, value: unknown) => schema.safeParse(value).success;
  const platform = Hello.shape.platform;
  return {
    hostname: fits(Hostname, w.hostname) ? w.hostname : w.id,
    agentVersion: fits(Hello.shape.agentVersion, w.agentVersion) ? w.agentVersion : "unknown",
    labels: Object.fromEntries(
      Object.entries(w.labels)
        .filter(([k, v]) => LABEL_KEY_PATTERN.test(k) && LABEL_VALUE_PATTERN.test(v))
        .slice(0, 64),
    ),
    platform: fits(platform, w.platform) ? w.platform : { os: "unknown", arch: "unknown", release: "unknown" },
  };
}

/**
 * An older manager wrote reason messages with its workers' words in them (goodbye reasons, close reasons, collector
 * errors). Only their codes are carried over: each message becomes its code, until the worker's next session.
 */
function fromVersion1(data: Parsed): Parsed {
  const codesOnly = (reasons: Array<{ code: string; message: string }>) => reasons.map((r) => ({ code: r.code, message: r.code }));
  return {
    ...data,
    workers: data.workers.map((w) => ({ ...w, reasons: codesOnly(w.reasons) })),
    events: data.events.map((e) => ({ ...e, reasons: codesOnly(e.reasons) })),
  };
}

/**
 * Writes atomically and privately (see writePrivateFileAtomic), one worker, event or invocation at a time: at
 * 10,000 workers with a fan-out in the history the file is some 20 MB of JSON, which as one string (and its copy
 * as bytes) would more than double the manager's memory growth for the job. The text is what one
 * `JSON.stringify` of the whole state would give.
 */
export function saveState(path: string, snapshot: RegistrySnapshot, now = new Date(), jobs?: PersistedJobs): void {
  writePrivateFileAtomic(path, stateText(snapshot, now, jobs));
}

export function* stateText(snapshot: RegistrySnapshot, now: Date, jobs?: PersistedJobs): Generator<string> {
  const { workers, events, ...rest } = snapshot;
  yield `{"version":${STATE_VERSION},"savedAt":${JSON.stringify(now.toISOString())},"workers":`;
  yield* arrayText(workers);
  yield `,"events":`;
  yield* arrayText(events);
  // A snapshot's other fields, if it ever has any, as the spread of the whole snapshot would place them.
  yield* fieldsText(rest);
  if (jobs !== undefined) {
    const { jobs: list, ...others } = jobs;
    yield `,"jobs":{"jobs":[`;
    for (let i = 0; i < list.length; i++) {
      const { invocations, ...head } = list[i]!;
      const fields = JSON.stringify(head).slice(1, -1);
      yield `${i === 0 ? "" : ","}{${fields}${fields === "" ? "" : ","}"invocations":`;
      yield* arrayText(invocations);
      yield "}";
    }
    yield "]";
    yield* fieldsText(others);
    yield "}";
  }
  yield "}";
}

/** A JSON array, an element at a time (an element JSON leaves out, like undefined, is written as null as it would be). */
function* arrayText(items: readonly unknown[]): Generator<string> {
  yield "[";
  for (let i = 0; i < items.length; i++) yield `${i === 0 ? "" : ","}${JSON.stringify(items[i]) ?? "null"}`;
  yield "]";
}

/** An object's fields as they follow others in it: `,"k":v` for each one JSON keeps. */
function* fieldsText(fields: Record<string, unknown>): Generator<string> {
  const text = JSON.stringify(fields);
  if (text !== "{}") yield `,${text.slice(1, -1)}`;
}
