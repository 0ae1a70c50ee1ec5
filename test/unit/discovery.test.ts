import assert from "node:assert/strict";
import { createCa } from "../../src/pki/generate.js";
import { describe, it } from "node:test";
import { decodeTxt, encodeTxt, fleetIdFromCa, instanceName } from "../../src/discovery/txt.js";
import { ManagerCandidates } from "../../src/worker/candidates.js";
import { EventEmitter } from "node:events";
import type { FleetBrowser, Peer } from "../../src/discovery/browser.js";

describe("mDNS TXT records", () => {
  it("encode every value as a non-empty string, and decode back", () => {
    const a = { role: "worker" as const, fleet: "0123456789abcdef", protocol: 1, id: "w1", version: "0.1.0" };
    const txt = encodeTxt(a);
    for (const [k, v] of Object.entries(txt)) {
      assert.equal(typeof v, "string");
      // bonjour-service reads "key=" as no value and drops one-byte entries; one-character values are fine.
      assert.ok(v.length > 0 && `${k}=${v}`.length > 1, `${k} survives bonjour-service's decoding`);
    }
    assert.deepEqual(decodeTxt(txt), a);
    assert.deepEqual(decodeTxt(encodeTxt({ role: "manager", fleet: "0123456789abcdef", protocol: 1 })), {
      role: "manager",
      fleet: "0123456789abcdef",
      protocol: 1,
      id: undefined,
      version: undefined,
    });
  });

  it("ignores what is not ours or not well formed", () => {
    for (const bad of [
      {},
      { txtvers: "2", role: "manager", fleet: "0123456789abcdef", proto: "1" },
      { txtvers: "1", role: "operator", fleet: "0123456789abcdef", proto: "1" },
      { txtvers: "1", role: "manager", fleet: "not-hex", proto: "1" },
      { txtvers: "1", role: "worker", fleet: "0123456789abcdef", proto: "1" }, // a worker without an id
      { txtvers: "1", role: "worker", fleet: "0123456789abcdef", proto: "1", id: "Bad_Id" },
      { txtvers: true, role: "manager", fleet: "0123456789abcdef", proto: "1" }, // a boolean, as bonjour-service may hand back
      "txtvers=1",
    ]) {
      assert.equal(decodeTxt(bad), null, JSON.stringify(bad));
    }
  });

  it("derives the fleet id from the CA certificate, and keeps dots out of instance names", async () => {
    const a = await createCa({ fleet: "lab", days: 1 });
    const b = await createCa({ fleet: "lab", days: 1 });
    assert.match(fleetIdFromCa(a.certPem), /^[0-9a-f]{16}$/);
    assert.equal(fleetIdFromCa(a.certPem), fleetIdFromCa(Buffer.from(a.certPem)));
    assert.notEqual(fleetIdFromCa(a.certPem), fleetIdFromCa(b.certPem), "same fleet name, another CA: another fleet");
    assert.equal(instanceName("mcp-fleet manager on host.example.com"), "mcp-fleet manager on host-example-com");
    assert.ok(instanceName("x".repeat(100)).length <= 63);
    assert.throws(() => fleetIdFromCa("not a certificate"));
  });
});

describe("manager candidates from mDNS", () => {
  const peer = (name: string, address: string, fleet = "0123456789abcdef", role: "manager" | "worker" = "manager", seen = 0): Peer => ({
    fqdn: `${name}._mcp-fleet._tcp.local`,
    name,
    host: `${name}.local`,
    port: 7443,
    addresses: [address],
    announcement: { role, fleet, protocol: 1 },
    lastSeen: seen,
  });

  function browserWith(peers: Peer[]) {
    // A stand-in for FleetBrowser: the same list() and change event, over peers the test sets.
    const fake = Object.assign(new EventEmitter(), {
      heard: peers,
      list(f: (p: Peer) => boolean) {
        return fake.heard.filter(f).sort((x, y) => y.lastSeen - x.lastSeen);
      },
    });
    return fake;
  }

  it("offers managers of this fleet only, most recently heard first, in turn", () => {
    const b = browserWith([
      peer("old", "10.0.0.1", undefined, "manager", 1),
      peer("new", "10.0.0.2", undefined, "manager", 2),
      peer("other-fleet", "10.0.0.3", "ffffffffffffffff"),
      peer("a-worker", "10.0.0.4", undefined, "worker"),
    ]);
    const c = new ManagerCandidates("0123456789abcdef", b as unknown as FleetBrowser);
    assert.deepEqual([c.next(), c.next(), c.next()], ["wss://10.0.0.2:7443", "wss://10.0.0.1:7443", "wss://10.0.0.2:7443"]);
  });

  it("sets aside a candidate whose certificate was rejected, until it goes away and comes back", () => {
    const rogue = peer("rogue", "10.0.0.66");
    const b = browserWith([rogue]);
    const c = new ManagerCandidates("0123456789abcdef", b as unknown as FleetBrowser);
    c.reject(c.next()!);
    assert.equal(c.next(), null);
    b.heard = [];
    b.emit("change");
    b.heard = [rogue];
    b.emit("change");
    assert.equal(c.next(), "wss://10.0.0.66:7443");
  });

  it("prefers IPv4 and brackets IPv6", () => {
    const b = browserWith([{ ...peer("v6", "fd00::1"), addresses: ["fe80::1", "fd00::1"] }]);
    const c = new ManagerCandidates("0123456789abcdef", b as unknown as FleetBrowser);
    assert.equal(c.next(), "wss://[fd00::1]:7443");
  });
});
