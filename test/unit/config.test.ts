import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { z } from "zod";
import { duration } from "../../src/config/duration.js";
import { envName, fields, flag, loadConfig } from "../../src/config/load.js";
import { isFleetError } from "../../src/errors.js";

function command() {
  return new Command("x")
    .exitOverride()
    .addOption(flag("--port <port>", "port", "7443"))
    .addOption(flag("--heartbeat-interval <d>", "interval", "1s"));
}
const schema = z.object({ port: fields.port, heartbeatInterval: duration({ min: 100 }) });

describe("config loader", () => {
  it("names each environment variable after its flag", () => {
    assert.equal(envName("--heartbeat-interval"), "MCP_FLEET_HEARTBEAT_INTERVAL");
    assert.equal(envName("--no-mdns"), "MCP_FLEET_NO_MDNS");
  });

  it("reads flags, then environment, then defaults", () => {
    const saved = { ...process.env };
    try {
      process.env.MCP_FLEET_PORT = "9000";
      process.env.MCP_FLEET_HEARTBEAT_INTERVAL = "250ms";
      const fromEnv = command().parse(["node", "x"]);
      assert.deepEqual(loadConfig(schema, fromEnv), { port: 9000, heartbeatInterval: 250 });
      const fromFlag = command().parse(["node", "x", "--port", "9001"]);
      assert.equal(loadConfig(schema, fromFlag).port, 9001);
      delete process.env.MCP_FLEET_PORT;
      delete process.env.MCP_FLEET_HEARTBEAT_INTERVAL;
      assert.deepEqual(loadConfig(schema, command().parse(["node", "x"])), { port: 7443, heartbeatInterval: 1000 });
    } finally {
      process.env = saved;
    }
  });

  it("says a missing required setting is required", () => {
    const cmd = new Command("x").exitOverride().addOption(flag("--manager <url>", "m")).parse(["node", "x"]);
    assert.throws(() => loadConfig(z.object({ manager: z.string() }), cmd), /--manager \(MCP_FLEET_MANAGER\): is required/);
  });

  it("lists every bad setting by flag and variable", () => {
    const cmd = command().parse(["node", "x", "--port", "70000", "--heartbeat-interval", "5"]);
    assert.throws(
      () => loadConfig(schema, cmd),
      (err: unknown) =>
        isFleetError(err, "E_CONFIG") &&
        /--port \(MCP_FLEET_PORT\): must be 0–65535/.test(err.message) &&
        /--heartbeat-interval \(MCP_FLEET_HEARTBEAT_INTERVAL\): "5" is not a duration.*add a unit/.test(err.message),
    );
  });
});
