/**
 * `npm test`: the unit and end-to-end tests in two phases. Most files run three at a time: many of them spend
 * their time waiting (a manager kept stopped for 60 s, a container booting, a fuzzer's fixed 30 s), so they
 * finish in far less time than one after another. Files that assert tight timing bounds with the real defaults
 * (detection within 1 s, healthy within 3 s, a cancel stopping processes within 1 s) run afterwards one at a
 * time, so no other test's load stands in their way (docs/testing.md, "Two phases").
 *
 * Arguments: test files to run instead of all of them (each keeps its phase).
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";

const ALONE = new Set([
  "health.test.ts",
  "restart.test.ts",
  "revocation.test.ts",
  "actions-jobs.test.ts",
  "worker-actions.test.ts",
  "mcp.test.ts",
  "daemon.test.ts",
  "bridge.test.ts",
]);

const listed = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts"))
    .sort()
    .map((f) => join(dir, f));
const files = process.argv.length > 2 ? process.argv.slice(2) : [...listed("test/unit"), ...listed("test/e2e")];
const alone = files.filter((f) => ALONE.has(basename(f)));
const paired = files.filter((f) => !ALONE.has(basename(f)));

function run(list: string[], concurrency: number): number {
  if (list.length === 0) return 0;
  const args = ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-timeout=300000", ...list];
  const r = spawnSync(process.execPath, args, { stdio: "inherit" });
  return r.status ?? 1;
}

// Both phases run even if the first fails, so one run reports every failure.
const first = run(paired, 3);
const second = run(alone, 1);
process.exit(first || second);
