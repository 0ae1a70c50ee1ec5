import type { JobService } from "./api.js";

/** Placeholder until the job service lands; every call says so. */
export function createJobService(): JobService {
  const missing = (): never => {
    throw new Error("the job service is not built yet");
  };
  return {
    listActions: missing,
    entry: missing,
    plan: missing,
    start: missing,
    get: missing,
    recent: missing,
    output: missing,
    cancel: missing,
    onInvocationEnded: missing,
    waitFor: missing,
    // get_worker_events lists action events beside the health events: none until the service lands.
    actionEvents: () => [],
  };
}
