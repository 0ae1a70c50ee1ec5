import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { type CallToolResult, ElicitRequestSchema, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { FakeClock } from "../../src/core/clock.js";
import { DEFAULT_POLICY } from "../../src/core/health.js";
import { Registry } from "../../src/core/registry.js";
import type { Approver, JoinDecisionResult, JoinRequestView, JoinService } from "../../src/enroll/api.js";
import { NO_ENROLLMENT } from "../../src/enroll/disabled.js";
import { FleetError } from "../../src/errors.js";
import { createLogger } from "../../src/log.js";
import type { Manager } from "../../src/manager/manager.js";
import { ANSWER_MAX_CHARS } from "../../src/mcp/answer-budget.js";
import { CONFIRMATION_TTL_MS } from "../../src/mcp/confirmations.js";
import { createMcpServer, type FleetMcp } from "../../src/mcp/server.js";
import { FakeJobs } from "../helpers/fake-jobs.js";

// The join tools through the real tool code (McpServer and the SDK Client over the in-memory transport), against
// a small in-test JoinService: what is under test is the tools (listing, confirmation, who decided, errors), not
// the enrollment, which has its own tests and the e2e tests with real hosts joining.

const T0 = Date.UTC(2026, 0, 1);

const request = (n: number, over: Partial<JoinRequestView> = {}): JoinRequestView => ({
  requestId: `req${String(n).padStart(5, "0")}`,
  requestedId: `web-${n}`,
  hostname: `web-${n}.lan`,
  address: `10.0.0.${n}`,
  keyFingerprint: `${n}`.repeat(64).slice(0, 64),
  tokenId: "tok123",
  labels: { role: "web" },
  createdAt: new Date(T0 - 90_000).toISOString(),
  expiresAt: new Date(T0 + 3_510_000).toISOString(),
  ageMs: 90_500,
  ...over,
});

interface Decision {
  decision: "approve" | "deny";
  requestId: string;
  by: Approver;
}

/** Pending requests the test sets, and a record of the decisions the tools asked for. */
class FakeJoins implements JoinService {
  enabled = true;
  decisions: Decision[] = [];
  /** When set, the next decision fails with this instead. */
  failWith: Error | null = null;
  constructor(public requests: JoinRequestView[]) {}

  listRequests(): JoinRequestView[] {
    return this.requests.map((r) => structuredClone(r));
  }

  approve(requestId: string, by: Approver): Promise<JoinDecisionResult> {
    return this.decide("approve", requestId, by);
  }

  deny(requestId: string, by: Approver): Promise<JoinDecisionResult> {
    return this.decide("deny", requestId, by);
  }

  private async decide(decision: Decision["decision"], requestId: string, by: Approver): Promise<JoinDecisionResult> {
    if (this.failWith) throw this.failWith;
    const r = this.requests.find((x) => x.requestId === requestId);
    if (!r) throw new FleetError("E_UNKNOWN_REQUEST", `no pending join request ${requestId} (it was decided, or it expired)`);
    this.requests = this.requests.filter((x) => x !== r);
    this.decisions.push({ decision, requestId, by });
    return decision === "approve"
      ? { requestId, workerId: r.requestedId, serialNumber: "0a1b2c", notAfter: new Date(T0 + 7 * 86_400_000).toISOString() }
      : { requestId, workerId: r.requestedId };
  }
}

interface Harness {
  client: Client;
  mcp: FleetMcp;
  joins: FakeJoins;
  clock: { now: number };
  elicited: string[];
}

const open: Harness[] = [];
const log = createLogger({ name: "test", level: "silent" });

function fakeManager(joins: JoinService): Manager {
  return {
    registry: new Registry({ clock: new FakeClock(), policy: DEFAULT_POLICY }),
    joins,
    port: 0,
    fleet: "test",
    fleetId: "0123456789abcdef",
    workerAnnouncements: () => [],
    reloadCrl: async () => {},
    onEvent: () => () => {},
    request: (async () => {
      throw new Error("no workers here");
    }) as Manager["request"],
    connected: () => false,
    jobs: new FakeJobs([]),
    onCatalog: () => () => {},
    close: async () => {},
  };
}

/** A client, with elicitation if `answer` is given (it answers each elicitation/create). */
async function connect(opts: { answer?: ElicitResult; requests?: JoinRequestView[]; joins?: JoinService } = {}): Promise<Harness> {
  const joins = new FakeJoins(opts.requests ?? [request(1), request(2)]);
  const clock = { now: T0 };
  const mcp = createMcpServer(fakeManager(opts.joins ?? joins), { requestTimeoutMs: 1000, now: () => clock.now, log });
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
  await mcp.server.connect(serverSide);
  const elicited: string[] = [];
  const client = new Client({ name: "join-tools-test", version: "1.2.3" }, opts.answer ? { capabilities: { elicitation: {} } } : {});
  if (opts.answer) {
    const answer = opts.answer;
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      elicited.push(req.params.message);
      return answer;
    });
  }
  await client.connect(clientSide);
  const h = { client, mcp, joins, clock, elicited };
  open.push(h);
  return h;
}

interface RequestOut {
  requestId: string;
  requestedId: string;
  hostname: string;
  address: string | null;
  keyFingerprint: string;
  tokenId: string | null;
  labels: Record<string, string>;
  expiresAt: string;
  ageSeconds: number;
}

/** The fields these tests read from the tools' answers (each answer holds some of them). */
interface Data {
  requests: RequestOut[];
  count: number;
  enrollment: string;
  confirmation: { token: string; expiresAt: string; request: RequestOut };
  approved: { workerId: string; serialNumber?: string; notAfter?: string };
  denied: { workerId: string };
}

async function call(h: Harness, name: string, args: Record<string, unknown> = {}): Promise<{ text: string; isError: boolean; data: Data }> {
  const r = (await h.client.callTool({ name, arguments: args })) as CallToolResult;
  const text = (r.content[0] as { text: string }).text;
  assert.ok(text.length <= ANSWER_MAX_CHARS, `${name}: ${text.length} characters`);
  if (r.structuredContent) assert.equal(text, JSON.stringify(r.structuredContent), "the text is the structured content's JSON");
  return { text, isError: r.isError === true, data: (r.structuredContent ?? {}) as unknown as Data };
}

/** The first call's token, asserting that nothing was decided by it. */
async function tokenFor(h: Harness, tool: "approve_join" | "deny_join", requestId: string): Promise<string> {
  const before = h.joins.decisions.length;
  const r = await call(h, tool, { request_id: requestId });
  assert.equal(r.isError, false, r.text);
  assert.equal(h.joins.decisions.length, before, "nothing decided");
  return r.data.confirmation.token;
}

describe("the join tools (list_join_requests, approve_join, deny_join)", () => {
  after(async () => {
    for (const h of open) {
      await h.client.close();
      await h.mcp.close();
    }
  });

  it("tools/list holds them, read-only and destructive as they are, within 32,768 characters", async () => {
    const h = await connect();
    const listed = await h.client.listTools();
    const size = JSON.stringify(listed).length;
    assert.ok(size < 32 * 1024, `tools/list is ${size} characters`);
    const byName = new Map(listed.tools.map((t) => [t.name, t]));
    assert.equal(byName.get("list_join_requests")?.annotations?.readOnlyHint, true);
    for (const name of ["approve_join", "deny_join"]) {
      const a = byName.get(name)?.annotations;
      assert.deepEqual([a?.readOnlyHint, a?.destructiveHint], [false, true], name);
      assert.deepEqual(byName.get(name)?.inputSchema.required, ["request_id"], name);
    }
    for (const name of ["list_join_requests", "approve_join", "deny_join"]) assert.ok(byName.get(name)?.outputSchema, `${name} declares an output schema`);
    assert.match(byName.get("list_join_requests")!.description!, /Reported by the joining host \(its claims\): requestedId .*hostname\. Observed: address, keyFingerprint/);
  });

  it("list_join_requests shows every pending request, oldest first, with its age in seconds and whether the manager enrolls", async () => {
    const h = await connect();
    const { data, isError, text } = await call(h, "list_join_requests");
    assert.equal(isError, false, text);
    assert.deepEqual(data.requests.map((r) => r.requestId), ["req00001", "req00002"]);
    assert.deepEqual(data.requests[0], {
      requestId: "req00001",
      requestedId: "web-1",
      hostname: "web-1.lan",
      address: "10.0.0.1",
      keyFingerprint: "1".repeat(64),
      tokenId: "tok123",
      labels: { role: "web" },
      expiresAt: new Date(T0 + 3_510_000).toISOString(),
      ageSeconds: 90,
    });
    assert.deepEqual([data.count, data.enrollment], [2, "enabled"]);

    const off = await connect({ joins: NO_ENROLLMENT });
    const none = await call(off, "list_join_requests");
    assert.deepEqual(none.data, { requests: [], count: 0, enrollment: "disabled" });
  });

  it("100 requests fit one answer; at the longest the host may send, the answer stays within the budget and counts them all", async () => {
    const h = await connect({ requests: Array.from({ length: 100 }, (_, i) => request(i)) });
    const typical = await call(h, "list_join_requests");
    assert.deepEqual([typical.data.requests.length, typical.data.count], [100, 100]);

    const labels = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`${"k".repeat(60)}${String(i).padStart(3, "0")}`, "v".repeat(63)]));
    const longest = Array.from({ length: 100 }, (_, i) =>
      request(i, { requestedId: `${"w".repeat(58)}${String(i).padStart(5, "0")}`, hostname: "h".repeat(253), address: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", tokenId: null, labels }),
    );
    const worst = await connect({ requests: longest });
    const r = await call(worst, "list_join_requests");
    assert.equal(r.data.count, 100);
    assert.ok(r.data.requests.length > 0 && r.data.requests.length < 100, `${r.data.requests.length} shown`);
    assert.equal(r.data.requests[0]!.requestId, "req00000", "the oldest come first");
  });

  it("without elicitation, approve_join answers with the request and a token, and approves only when confirmed with it, once", async () => {
    const h = await connect();
    const first = await call(h, "approve_join", { request_id: "req00001" });
    assert.equal(first.isError, false, first.text);
    assert.deepEqual(Object.keys(first.data), ["confirmation"]);
    const { token, expiresAt, request: shown } = first.data.confirmation;
    assert.equal(Date.parse(expiresAt), T0 + CONFIRMATION_TTL_MS);
    assert.deepEqual([shown.requestId, shown.requestedId, shown.hostname, shown.keyFingerprint], ["req00001", "web-1", "web-1.lan", "1".repeat(64)]);
    assert.deepEqual(h.joins.decisions, [], "nothing decided");

    const done = await call(h, "approve_join", { request_id: "req00001", confirm: token });
    assert.equal(done.isError, false, done.text);
    assert.deepEqual(done.data.approved, { workerId: "web-1", serialNumber: "0a1b2c", notAfter: new Date(T0 + 7 * 86_400_000).toISOString() });
    assert.deepEqual(h.joins.decisions, [{ decision: "approve", requestId: "req00001", by: { via: "mcp", name: "join-tools-test", version: "1.2.3" } }]);

    const again = await call(h, "approve_join", { request_id: "req00001", confirm: token });
    assert.equal(again.isError, true);
    assert.match(again.text, /^E_CONFIRMATION: this token was used already; nothing was decided/);
    assert.equal(h.joins.decisions.length, 1);
  });

  it("deny_join is confirmed the same way", async () => {
    const h = await connect();
    const token = await tokenFor(h, "deny_join", "req00002");
    const done = await call(h, "deny_join", { request_id: "req00002", confirm: token });
    assert.equal(done.isError, false, done.text);
    assert.deepEqual(done.data.denied, { workerId: "web-2" });
    assert.deepEqual(h.joins.decisions, [{ decision: "deny", requestId: "req00002", by: { via: "mcp", name: "join-tools-test", version: "1.2.3" } }]);
  });

  it("a token confirms only its own decision on its own request, and a mistaken use does not spend it", async () => {
    const h = await connect();
    const approveOne = await tokenFor(h, "approve_join", "req00001");
    const other = await call(h, "approve_join", { request_id: "req00002", confirm: approveOne });
    assert.equal(other.isError, true);
    assert.match(other.text, /^E_CONFIRMATION: this token confirms another decision/);

    const denyOne = await tokenFor(h, "deny_join", "req00001");
    const crossed = await call(h, "approve_join", { request_id: "req00001", confirm: denyOne });
    assert.match(crossed.text, /^E_CONFIRMATION: this token confirms another decision/);
    const crossedBack = await call(h, "deny_join", { request_id: "req00001", confirm: approveOne });
    assert.match(crossedBack.text, /^E_CONFIRMATION: this token confirms another decision/);
    assert.equal(h.joins.decisions.length, 0, "nothing decided");

    const own = await call(h, "deny_join", { request_id: "req00001", confirm: denyOne });
    assert.equal(own.isError, false, own.text);
    assert.deepEqual(h.joins.decisions.map((d) => [d.decision, d.requestId]), [["deny", "req00001"]]);
  });

  it("refuses an expired token, and answers an unknown one with a new token", async () => {
    const h = await connect();
    const token = await tokenFor(h, "approve_join", "req00001");
    h.clock.now += CONFIRMATION_TTL_MS;
    const late = await call(h, "approve_join", { request_id: "req00001", confirm: token });
    assert.equal(late.isError, true);
    assert.match(late.text, /^E_CONFIRMATION: this token has expired \(tokens are valid 2 minutes\)/);
    const unknown = await call(h, "approve_join", { request_id: "req00001", confirm: "not-a-token" });
    assert.equal(unknown.isError, false, unknown.text);
    assert.ok(unknown.data.confirmation.token);
    assert.deepEqual(h.joins.decisions, []);
  });

  it("with elicitation, the user is asked, naming the request; accept decides it", async () => {
    const h = await connect({ answer: { action: "accept", content: { confirm: true } } });
    const r = await call(h, "approve_join", { request_id: "req00001" });
    assert.equal(r.isError, false, r.text);
    assert.equal(r.data.approved.workerId, "web-1");
    assert.equal(h.elicited.length, 1);
    const q = h.elicited[0]!;
    for (const part of ["req00001", '"web-1.lan"', '"web-1"', "10.0.0.1", "1".repeat(64), "token tok123", "role=web"]) assert.ok(q.includes(part), `${part} in: ${q}`);
    assert.match(q, /^Approve join request req00001\? The host says it is "web-1\.lan"/);
    assert.deepEqual(h.joins.decisions.map((d) => [d.decision, d.by.name]), [["approve", "join-tools-test"]]);

    const none = await call(h, "deny_join", { request_id: "req00002" });
    assert.equal(none.isError, false, none.text);
    assert.match(h.elicited[1]!, /^Deny join request req00002\?/);
  });

  it("with elicitation, decline or cancel decides nothing, and the answer says so", async () => {
    for (const action of ["decline", "cancel"] as const) {
      const h = await connect({ answer: { action } });
      for (const tool of ["approve_join", "deny_join"]) {
        const r = await call(h, tool, { request_id: "req00001" });
        assert.equal(r.isError, true, tool);
        assert.match(r.text, /^E_DECLINED: .*req00001; nothing was decided/);
      }
      assert.deepEqual(h.joins.decisions, []);
      assert.equal(h.elicited.length, 2);
    }
  });

  it("an unknown request, a request gone before its token was used, and a manager that does not enroll give errors that say so", async () => {
    const h = await connect();
    const unknown = await call(h, "approve_join", { request_id: "nope1234" });
    assert.equal(unknown.isError, true);
    assert.match(unknown.text, /^E_UNKNOWN_REQUEST: no pending join request "nope1234"; list_join_requests shows the pending ones/);
    assert.match((await call(h, "deny_join", { request_id: "nope1234" })).text, /^E_UNKNOWN_REQUEST: /);

    const token = await tokenFor(h, "approve_join", "req00001");
    h.joins.requests = h.joins.requests.filter((r) => r.requestId !== "req00001");
    const gone = await call(h, "approve_join", { request_id: "req00001", confirm: token });
    assert.equal(gone.isError, true);
    assert.equal(gone.text, "E_UNKNOWN_REQUEST: no pending join request req00001 (it was decided, or it expired)");

    const failing = await tokenFor(h, "deny_join", "req00002");
    h.joins.failWith = new Error("tokens.json: disk full");
    const failed = await call(h, "deny_join", { request_id: "req00002", confirm: failing });
    assert.equal(failed.text, "E_JOIN: tokens.json: disk full");
    assert.deepEqual(h.joins.decisions, []);

    const off = await connect({ joins: NO_ENROLLMENT });
    const disabled = await call(off, "approve_join", { request_id: "abcd1234" });
    assert.equal(disabled.isError, true);
    assert.match(disabled.text, /^E_UNKNOWN_REQUEST: .*does not enroll hosts \(it has no CA key\)/);
  });
});
