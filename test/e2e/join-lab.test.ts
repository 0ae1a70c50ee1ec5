import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fleetIdFromCa } from "../../src/discovery/txt.js";
import { updateJoinFile } from "../../src/enroll/token-file.js";
import { caPin, pinPrefix } from "../../src/pki/pin.js";
import { formatJoinString, JOIN_REFUSAL_TEXT, type JoinRefusal } from "../../src/protocol/join.js";
import { makeCerts, tempDir, useCerts } from "../helpers/fleet.js";
import { createToken, spkiSha256 } from "../helpers/join.js";
import { McpManager } from "../helpers/mcp-client.js";
import { labUnavailable, NetLab } from "../helpers/netlab.js";
import { runCli, sleep, type LogLine, type Proc } from "../helpers/processes.js";

const unavailable = labUnavailable();
if (unavailable) console.log(`# skipping the join lab: ${unavailable}`);

type RogueEvent = { event: string; from?: string; bytes?: number; method?: string; path?: string; servername?: string | null };
type RequestRow = { id?: string; requestId?: string; requestedId: string; hostname: string; address: string | null; keyFingerprint: string; tokenId: string | null };

/** Waits for `probe` to return something truthy, every 100 ms, at most `ms`. */
async function until<T>(what: string, ms: number, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

const text = (l: LogLine) => JSON.stringify(l);

/**
 * Hosts given only a join string, on a LAN of network namespaces with real mDNS: a rogue that copies the fleet's
 * TXT record gets nothing past its handshake, bad tokens are refused with their own codes, an operator approves
 * and denies hosts through a real MCP client. One lab, one manager.
 */
describe("hosts joining by themselves, on a LAN of network namespaces", { skip: unavailable ?? false }, () => {
  const fx = useCerts("join-lab", [], { before, after });
  let lab: NetLab;
  let manager: McpManager;
  let rogue: Proc;
  let pin: string;
  let stateRoot: string;
  let firstToken: { join: string; id: string };
  let cleanups: Array<() => Promise<void>> = [];
  const joiners = new Map<string, Proc>();
  let denied: { worker: Proc; firstAt: number } | undefined;

  const stateDir = (host: string) => join(stateRoot, host);
  const joiner = (host: string, joinString: string): Proc => {
    const p = lab.run(host, `joiner ${host}`, ["worker", "--join", joinString, "--state-dir", stateDir(host)]);
    joiners.set(host, p);
    return p;
  };
  const rogueEvents = (): RogueEvent[] => rogue.stdout.map((l) => JSON.parse(l) as RogueEvent);
  const fromHost = (host: string) => (e: { from?: string | null; address?: unknown }) =>
    String(e.from ?? e.address ?? "").replace(/^::ffff:/, "") === lab.host(host).address;
  const requests = async () => (await manager.ok<{ requests: RequestRow[] }>("list_join_requests")).requests;
  const requestId = (r: RequestRow) => r.requestId ?? r.id!;
  /** A destructive tool without elicitation: the plan and its token first, then the call that acts. */
  const confirmed = async (tool: string, args: Record<string, unknown>) => {
    const plan = await manager.call(tool, args);
    assert.ok(!plan.isError, `${tool} plan: ${JSON.stringify(plan.content)}`);
    const token = (plan.structuredContent as { confirmation?: { token?: string } }).confirmation?.token;
    assert.ok(token, `${tool} without elicitation answers a plan and a confirmation token: ${JSON.stringify(plan.structuredContent)}`);
    return manager.ok<Record<string, unknown>>(tool, { ...args, confirm: token });
  };

  before(async () => {
    lab = NetLab.create(["mgr", "rogue", "j1", "m1", "d1", "e1", "x-exp", "x-exh", "x-rev", "x-sec"]);
    pin = caPin(readFileSync(fx.certs.ca));
    const states = await tempDir("join-lab-state");
    stateRoot = states.path;
    const foreign = await tempDir("join-lab-rogue");
    cleanups = [states.cleanup, foreign.cleanup];
    await makeCerts(foreign.path, [], "test");
    // The rogue is on the LAN first, copying what the real manager announces: the fleet id and the pin's prefix.
    rogue = lab.script("rogue", "rogue", "rogue-manager.ts", [foreign.path, fleetIdFromCa(readFileSync(fx.certs.ca)), pinPrefix(pin)]);
    await until("the rogue's announcement", 15_000, () => rogue.stdout.some((l) => l.includes('"announced"')));
  });
  after(async () => {
    manager?.kill();
    for (const c of cleanups) await c();
    lab?.destroySync();
  });

  it("a rogue copying the fleet's TXT record is refused on the pin and gets no byte after its handshake; the host then joins the real manager, healthy within 15 s", async (t) => {
    firstToken = await createToken(fx.dir, ["--uses", "1"]);
    const j1 = joiner("j1", firstToken.join);
    // Only the rogue is announced yet: the host dials it and must refuse it on the pin.
    const mismatch = await j1.waitFor((l) => text(l).includes("pin_mismatch"), 20_000, "pin_mismatch");
    assert.ok(text(mismatch).includes(lab.host("rogue").address), `the refusal names the rogue's address: ${text(mismatch)}`);
    assert.equal(statSync(join(stateDir("j1"), "worker-key.pending.pem")).mode % 0o1000, 0o600, "the key is on disk, 0600, before anything is sent");

    manager = await McpManager.start(fx.certs, [], { launcher: lab.launcher("mgr"), mdns: true });
    const took = await manager.waitForWorker("j1", (w) => w.state === "healthy", 15_000);
    t.diagnostic(`j1 healthy ${Math.round(took)} ms after the manager started`);
    const joined = await until("the manager's `host joined`", 5000, () => manager.lines.find((l) => l.msg === "host joined" && l.id === "j1"));
    assert.equal(joined.tokenId, firstToken.id);
    assert.ok(fromHost("j1")(joined as { address?: unknown }), `host joined names j1's address: ${text(joined)}`);

    // The rogue's side: j1 dialled it with the join name, and hung up once it had read the rogue's chain (the
    // rogue's handshake then fails, or, had it completed, closes having received nothing).
    const seen = await until(`j1's connection to the rogue ended (the rogue saw: ${rogue.stdout.join(" ")})`, 10_000, () => {
      const mine = rogueEvents().filter(fromHost("j1"));
      return mine.some((e) => e.event === "closed" || e.event === "tls-failed") && mine;
    });
    assert.ok(seen.some((e) => ["tls", "tls-failed"].includes(e.event) && e.servername === "join.mcp-fleet.invalid"), `j1 dialled the rogue with the join name: ${rogue.stdout.join("\n")}`);
    assert.deepEqual(seen.filter((e) => ["request", "upgrade", "message"].includes(e.event)), [], "no HTTP request, upgrade or message reached the rogue");
    for (const c of seen.filter((e) => e.event === "closed")) assert.equal(c.bytes, 0, `application bytes the rogue received from j1: ${c.bytes}`);

    const files = ["ca.pem", "worker.pem", "worker-key.pem"].map((f) => join(stateDir("j1"), f));
    assert.equal(readFileSync(files[0]!, "utf8").trim(), readFileSync(fx.certs.ca, "utf8").trim(), "the host trusts the real fleet CA");
    assert.equal(statSync(files[2]!).mode % 0o1000, 0o600);
  });

  it("a host with no token waits for an operator: list_join_requests shows it, and approve_join (plan, then its token) lets it in", async (t) => {
    const waiting = formatJoinString({ token: null, pin });
    joiner("m1", waiting);
    const d1 = joiner("d1", waiting);
    const e1 = joiner("e1", waiting);
    const listed = await until("m1, d1 and e1 in list_join_requests", 20_000, async () => {
      const rows = await requests();
      return ["m1", "d1", "e1"].every((id) => rows.some((r) => r.requestedId === id)) && rows;
    });
    const row = listed.find((r) => r.requestedId === "m1")!;
    assert.equal(row.hostname, "m1");
    assert.equal(row.address?.replace(/^::ffff:/, ""), lab.host("m1").address, "the address the manager saw");
    assert.equal(row.tokenId, null);
    assert.equal(row.keyFingerprint, spkiSha256(readFileSync(join(stateDir("m1"), "worker-key.pending.pem"))), "the key shown is the one on the host");
    // The host learns its request's id from the first `pending` answer, at the end of its long poll; the manager
    // logs the request as it queues it.
    const queued = manager.lines.find((l) => l.msg === "join request waiting for approval" && l.requestId === requestId(row));
    assert.ok(queued && fromHost("m1")(queued as { address?: unknown }), `the manager logs the waiting request with its address: ${JSON.stringify(queued)}`);
    const { workers } = await manager.ok<{ workers: Array<{ id: string }> }>("list_workers");
    assert.ok(!workers.some((w) => w.id === "m1"), "a pending host is not a worker");

    const started = performance.now();
    await confirmed("approve_join", { request_id: requestId(row) });
    await manager.waitForWorker("m1", (w) => w.state === "healthy", 15_000);
    t.diagnostic(`m1 healthy ${Math.round(performance.now() - started)} ms after approve_join`);
    assert.ok(!(await requests()).some((r) => r.requestedId === "m1"), "an approved request leaves the list");
    assert.ok(
      manager.lines.some((l) => text(l).includes(requestId(row)) && text(l).includes("mcp-fleet-test") && /approv/i.test(text(l))),
      "the decision is logged with the MCP client's name",
    );

    const dRow = listed.find((r) => r.requestedId === "d1")!;
    await confirmed("deny_join", { request_id: requestId(dRow) });
    const first = await d1.waitFor((l) => l.code === "denied", 10_000, "the denial, at once: the host was waiting on it");
    assert.ok(text(first).includes(JOIN_REFUSAL_TEXT.denied), text(first));
    denied = { worker: d1, firstAt: first.receivedAt };
    assert.ok(!(await requests()).some((r) => r.requestedId === "d1"), "a denied request leaves the list");

    // A request waits at most an hour: e1's hour is moved into the past in the join file the manager watches.
    const eId = requestId(listed.find((r) => r.requestedId === "e1")!);
    await updateJoinFile(join(fx.dir, "tokens.json"), (f) => {
      f.requests.find((r) => r.requestId === eId)!.expiresAt = new Date(Date.now() - 1000).toISOString();
    });
    await until("the expired request gone from list_join_requests", 5000, async () => !(await requests()).some((r) => r.requestedId === "e1"));
    const gone = await e1.waitFor((l) => l.code === "request_expired", 30_000, "e1 told its request expired when it next asked");
    assert.ok(text(gone).includes(JOIN_REFUSAL_TEXT.request_expired), text(gone));
    e1.kill("SIGKILL");
  });

  it("expired, exhausted, revoked and wrong-secret tokens are refused, each with its own code and message, on both sides", async () => {
    // A token's shortest life is a minute: this one's expiry is moved into the past in the join file the manager reads.
    const expired = await createToken(fx.dir);
    await updateJoinFile(join(fx.dir, "tokens.json"), (f) => {
      f.tokens.find((x) => x.id === expired.id)!.expiresAt = new Date(Date.now() - 1000).toISOString();
    });
    const revoked = await createToken(fx.dir);
    const r = await runCli(["token", "revoke", revoked.id, "--dir", fx.dir]);
    assert.equal(r.code, 0, r.stderr);
    const good = await createToken(fx.dir);
    // The right token id with a secret one character off.
    const wrongSecret = good.join.replace(`.${good.secret}:`, `.${good.secret.startsWith("a") ? "b" : "a"}${good.secret.slice(1)}:`);
    assert.notEqual(wrongSecret, good.join);
    const listed = await runCli(["token", "list", "--json", "--dir", fx.dir]);
    const statuses = Object.fromEntries((JSON.parse(listed.stdout) as Array<{ id: string; status: string }>).map((x) => [x.id, x.status]));
    assert.deepEqual([statuses[expired.id], statuses[revoked.id], statuses[firstToken.id], statuses[good.id]], ["expired", "revoked", "exhausted", "active"]);
    const cases: Array<[string, string, JoinRefusal]> = [
      ["x-exp", expired.join, "expired_token"],
      ["x-exh", firstToken.join, "exhausted_token"], // uses 1, taken by j1
      ["x-rev", revoked.join, "revoked_token"],
      ["x-sec", wrongSecret, "wrong_secret"],
    ];
    for (const [host, s] of cases) joiner(host, s);
    for (const [host, , code] of cases) {
      const w = joiners.get(host)!;
      const said = await w.waitFor((l) => l.code === code, 20_000, `${host}: ${code}`);
      assert.ok(text(said).includes(JOIN_REFUSAL_TEXT[code]), `${host} logs the message of ${code}: ${text(said)}`);
      const logged = await until(`the manager's join refused ${code} for ${host}`, 5000, () =>
        manager.lines.find((l) => l.msg === "join refused" && l.code === code && fromHost(host)(l as { address?: unknown })),
      );
      assert.ok(text(logged).includes(code), text(logged));
      assert.ok(!joiners.get(host)!.lines.some((l) => l.msg === "connected to manager"), `${host} never connected as a worker`);
    }
    const { workers } = await manager.ok<{ workers: Array<{ id: string }> }>("list_workers");
    assert.deepEqual(workers.map((w) => w.id).filter((id) => id.startsWith("x-")), [], "no refused host became a worker");
    for (const [host] of cases) joiners.get(host)!.kill("SIGKILL");
  });

  it("the denied host keeps being refused and backs off: at most 5 attempts in the 10 s after its denial", async (t) => {
    assert.ok(denied, "the deny case ran");
    const windowEnd = denied.firstAt + 10_000;
    // A measurement window, not a wait for an event: how often the host asks again over 10 s.
    await until("the 10 s window to pass", 15_000, () => performance.now() >= windowEnd);
    const refusals = denied.worker.lines.filter((l) => l.code === "denied" && l.receivedAt <= windowEnd);
    t.diagnostic(`d1 refused ${refusals.length} times in the 10 s after its denial`);
    assert.ok(refusals.length <= 5, `d1 asked ${refusals.length} times in 10 s after being denied`);
    assert.ok(manager.lines.some((l) => l.msg === "join refused" && l.code === "denied" && fromHost("d1")(l as { address?: unknown })), "the manager logs the denial's refusals");
    assert.ok(denied.worker.running, "a denied host keeps running (and asking, slowly), it does not crash");
  });
});
