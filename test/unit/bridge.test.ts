import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { classify, isSessionGone, isUnreachable } from "../../src/bridge/failure.js";
import { InFlight } from "../../src/bridge/ids.js";
import { mcpUrl, mcpUrlOfCandidate } from "../../src/bridge/locate.js";

describe("the bridge's parts", () => {
  it("--manager: a base URL gets /mcp; anything but https is refused", () => {
    assert.equal(mcpUrl("https://m.example:7443").href, "https://m.example:7443/mcp");
    assert.equal(mcpUrl("https://m.example:7443/mcp").href, "https://m.example:7443/mcp");
    assert.throws(() => mcpUrl("http://m.example:7443"), /must be an https:\/\/ URL/);
    assert.throws(() => mcpUrl("m.example"), /is not a URL/);
  });

  it("an mDNS candidate (where workers connect) becomes the same host's /mcp", () => {
    assert.equal(mcpUrlOfCandidate("wss://192.168.1.5:7443").href, "https://192.168.1.5:7443/mcp");
    assert.equal(mcpUrlOfCandidate("wss://[fd00::5]:7443").href, "https://[fd00::5]:7443/mcp");
  });

  it("ids are never reused, and an answer goes back only once", () => {
    const t = new InFlight<{ clientId: number; generation: number }>();
    const a = t.add({ clientId: 1, generation: 1 });
    const b = t.add({ clientId: 1, generation: 2 });
    assert.notEqual(a, b);
    assert.deepEqual(t.drain(1).map(([id]) => id), [a]);
    assert.equal(t.take(a), undefined);
    assert.equal(t.take(String(b)), undefined, "a string id is the bridge's own, never the client's");
    assert.deepEqual(t.take(b), { clientId: 1, generation: 2 });
    assert.equal(t.take(b), undefined);
  });

  it("a refused certificate is permanent; a refused connection or a full manager is not", () => {
    const refused = Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:7443"), { code: "ECONNREFUSED" }) });
    assert.deepEqual(classify(refused), { permanent: false, message: "connect ECONNREFUSED 127.0.0.1:7443 (ECONNREFUSED)" });
    assert.ok(isUnreachable(refused));
    const badCa = Object.assign(new TypeError("fetch failed"), { cause: Object.assign(new Error("unable to verify the first certificate"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" }) });
    assert.equal(classify(badCa).permanent, true);
    assert.equal(classify(new StreamableHTTPError(403, "the client certificate is worker")).permanent, true);
    assert.equal(classify(new StreamableHTTPError(503, "too many MCP sessions")).permanent, false);
    assert.ok(isSessionGone(new StreamableHTTPError(404, "unknown session")));
    assert.ok(!isUnreachable(new StreamableHTTPError(500, "internal error")));
  });
});
