import type { Labels } from "../protocol/messages.js";

/** A worker's labels are its own claims: this many at most become Prometheus labels, each value cut to this. */
export const MAX_WORKER_LABELS = 16;
export const MAX_LABEL_VALUE = 64;

/**
 * A worker label key as a Prometheus label name: `label_` and the key with every other character than
 * [a-zA-Z0-9_] turned into `_` (as kube-state-metrics does). The prefix keeps worker keys from colliding with
 * the metric's own labels (`worker`, `le`) and from Prometheus's reserved `__` names.
 */
export function labelName(key: string): string {
  return `label_${key.replace(/[^a-zA-Z0-9_]/g, "_")}`;
}

/**
 * The labels a worker's series carry beside `worker`: the first MAX_WORKER_LABELS keys in sorted order, values cut
 * to MAX_LABEL_VALUE. Two keys that sanitise to the same name keep the first (sorted), so a series never has a
 * label twice.
 */
export function workerLabels(labels: Labels): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const key of Object.keys(labels).sort()) {
    if (n >= MAX_WORKER_LABELS) break;
    const name = labelName(key);
    if (name in out) continue;
    out[name] = labels[key]!.slice(0, MAX_LABEL_VALUE);
    n++;
  }
  return out;
}
