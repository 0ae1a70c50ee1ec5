/**
 * CI's setup step (.ci/run): builds, or brings up to date, the container root the real-systemd test boots. It
 * fetches from Debian's mirror, which is why it runs before the tests and never inside one.
 */
import { ensureSystemdRoot, rootUnbuildable } from "./nspawn.js";

const why = rootUnbuildable();
if (why) {
  console.log(`not building the systemd container root: ${why}; the real-systemd test will be skipped`);
} else {
  const started = performance.now();
  const root = await ensureSystemdRoot((line) => console.log(line));
  console.log(`systemd container root ready at ${root} (${Math.round(performance.now() - started)} ms)`);
}
