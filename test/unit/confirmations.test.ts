import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Plan } from "../../src/jobs/api.js";
import { canonicalJson, CONFIRMATION_TTL_MS, Confirmations, joinBinding, planBinding } from "../../src/mcp/confirmations.js";

const plan = (over: Partial<Plan> = {}): Plan => ({
  action: "restart_unit",
  arguments: { unit: "nginx.service", force: false },
  destructive: true,
  targets: ["web-01", "web-02"],
  definitionHashes: ["0123456789abcdef"],
  maxConcurrency: 10,
  maxErrors: 0,
  timeoutMs: 30_000,
  ...over,
});

function store() {
  let now = Date.UTC(2026, 0, 1);
  const c = new Confirmations({ now: () => now });
  return { c, advance: (ms: number) => (now += ms), now: () => now };
}

describe("confirmation tokens", () => {
  it("a token runs exactly its plan, once", () => {
    const { c } = store();
    const { token } = c.issue(planBinding(plan()));
    assert.equal(c.redeem(token, planBinding(plan())), null);
    assert.equal(c.redeem(token, planBinding(plan())), "reused");
  });

  it("is random, 128 bits, and valid for two minutes", () => {
    const { c, advance, now } = store();
    const a = c.issue(planBinding(plan()));
    const b = c.issue(planBinding(plan()));
    assert.notEqual(a.token, b.token);
    assert.equal(Buffer.from(a.token, "base64url").length, 16);
    assert.equal(a.expiresAt, now() + CONFIRMATION_TTL_MS);
    advance(CONFIRMATION_TTL_MS - 1);
    assert.equal(c.redeem(a.token, planBinding(plan())), null);
    advance(1);
    assert.equal(c.redeem(b.token, planBinding(plan())), "expired");
  });

  it("is bound to the action, the arguments, the target set and the definitions", () => {
    const { c } = store();
    const { token } = c.issue(planBinding(plan()));
    for (const other of [
      plan({ action: "stop_unit" }),
      plan({ arguments: { unit: "nginx.service", force: true } }),
      plan({ arguments: { unit: "nginx.service" } }),
      plan({ targets: ["web-01"] }),
      plan({ targets: ["web-01", "web-02", "web-03"] }),
      plan({ definitionHashes: ["fedcba9876543210"] }),
    ]) {
      assert.equal(c.redeem(token, planBinding(other)), "mismatched", JSON.stringify(other));
    }
    // A mistaken call does not spend the token; key order and target order do not matter, nor do the limits.
    assert.equal(c.redeem(token, planBinding(plan({ arguments: { force: false, unit: "nginx.service" }, targets: ["web-02", "web-01"], maxConcurrency: 1 }))), null);
  });

  it("an unknown token is unknown, and used or expired ones are forgotten after a while", () => {
    const { c, advance } = store();
    assert.equal(c.redeem("nope", planBinding(plan())), "unknown");
    const { token } = c.issue(planBinding(plan()));
    assert.equal(c.redeem(token, planBinding(plan())), null);
    advance(CONFIRMATION_TTL_MS + 600_000);
    assert.equal(c.redeem(token, planBinding(plan())), "unknown");
  });

  it("remembers a bounded number of tokens, forgetting the oldest", () => {
    const { c } = store();
    const first = c.issue(planBinding(plan())).token;
    for (let i = 0; i < 1000; i++) c.issue(planBinding(plan()));
    assert.equal(c.redeem(first, planBinding(plan())), "unknown");
  });

  it("a join decision's token is bound to the decision and the request id, and never confirms a plan", () => {
    const { c } = store();
    const { token } = c.issue(joinBinding("approve", "abcd1234"));
    assert.equal(c.redeem(token, joinBinding("deny", "abcd1234")), "mismatched");
    assert.equal(c.redeem(token, joinBinding("approve", "abcd1235")), "mismatched");
    assert.equal(c.redeem(token, planBinding(plan())), "mismatched");
    assert.equal(c.redeem(token, joinBinding("approve", "abcd1234")), null);
    assert.equal(c.redeem(token, joinBinding("approve", "abcd1234")), "reused");
  });

  it("canonical JSON sorts keys at every depth and keeps array order", () => {
    assert.equal(canonicalJson({ b: [2, { d: 1, c: 2 }], a: "x" }), '{"a":"x","b":[2,{"c":2,"d":1}]}');
    assert.equal(planBinding(plan({ arguments: { a: 1, b: 2 } })), planBinding(plan({ arguments: { b: 2, a: 1 } })));
  });
});
