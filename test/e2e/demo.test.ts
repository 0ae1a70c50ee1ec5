import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

const DEMO = fileURLToPath(new URL("../../scripts/demo.ts", import.meta.url));

describe("npm run demo", () => {
  it("shows the fleet through the MCP tools: three healthy, the killed one detected; throwaway files removed", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", DEMO, "--for", "9s"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    clearTimeout(killer);
    assert.equal(code, 0, err);

    const screens = out.split(/\n(?=mcp-fleet demo:)/);
    assert.ok(screens.length >= 5, `${screens.length} refreshes`);
    assert.ok(
      screens.some((s) => ["alpha", "bravo", "charlie"].every((id) => new RegExp(`^  ${id}\\s+healthy`, "m").test(s))),
      "all three healthy at some point",
    );
    const last = screens.at(-1)!;
    assert.match(last, /^ {2}bravo\s+unhealthy.*connection lost/m, "the killed worker is unhealthy");
    assert.match(last, /^ {2}alpha\s+healthy/m);
    assert.match(last, /^ {2}charlie\s+healthy/m);
    assert.match(last, /2 healthy, 0 degraded, 1 unhealthy, 0 offline/);
    assert.match(last, /\[warning\] worker bravo is unhealthy: connection lost/, "the MCP log notification arrived");
    const removed = /stopped; removed (\S+)/.exec(out)?.[1];
    assert.ok(removed && !existsSync(removed), "throwaway directory removed");
  });
});
