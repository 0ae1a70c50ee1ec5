/**
 * Join simulator: one child process of `npm run bench` playing many bare hosts that join the fleet at once. Each
 * has its own P-256 key and CSR (made before the start, as a host makes its key before it dials), its own loopback
 * source address (127.0.x.y, so the manager's per-address rate limit sees one host per address, as on a LAN), and
 * does what the agent does: TLS with the join server name, the CA pin checked on the chain before a byte is sent,
 * the POST, and on `issued` a mutual-TLS session with the new certificate: hello, welcome, heartbeats.
 *
 * Driven by its parent over the IPC channel; every reply is one message. It never outlives its parent.
 */
import { X509Certificate } from "node:crypto";
import { request } from "node:https";
import { connect as tcpConnect } from "node:net";
import { connect, createSecureContext, type DetailedPeerCertificate, type TLSSocket } from "node:tls";
import { WebSocket } from "ws";
import { createCsr } from "../../src/pki/csr.js";
import { identityFromSubjectAltName } from "../../src/pki/identity.js";
import { caPin } from "../../src/pki/pin.js";
import { JOIN_PATH, JOIN_PROTOCOL, JOIN_SERVERNAME, JoinAnswer, parseJoinString, type JoinString } from "../../src/protocol/join.js";
import { CONNECT_TIMEOUT_MS, MAX_FRAME_BYTES, PROTOCOL_VERSION } from "../../src/protocol/messages.js";
import { metrics } from "./sim-metrics.js";
import type { JoinSimCommand, JoinSimReply, JoinSimStats } from "./join-sim-protocol.js";

const now = () => performance.timeOrigin + performance.now();

interface Host {
  id: string;
  address: string;
  keyPem: string;
  csrPem: string;
  /** Epoch ms: when it dialled the join endpoint the first time, got its certificate, got its welcome. */
  startedAt: number;
  issuedAt: number;
  welcomedAt: number;
  attempts: number;
  ws: WebSocket | null;
  hb: NodeJS.Timeout | null;
}

let hosts: Host[] = [];
let stopping = false;
const failures = new Map<string, number>();
const count = (key: string) => failures.set(key, (failures.get(key) ?? 0) + 1);

/** The n-th host's loopback address: 127.0.1.1, 127.0.1.2, … (Linux routes all of 127/8 to lo). */
function loopbackAddress(n: number): string {
  return `127.0.${1 + Math.floor(n / 250)}.${1 + (n % 250)}`;
}

/** A TCP connection from the host's own loopback address. */
function fromOwnAddress(h: Host, host: string, port: number) {
  return tcpConnect({ host, port, localAddress: h.address });
}

/** The pin check the agent makes before it sends: a CA in the chain with the pinned key signed a manager's leaf. */
function pinned(peer: DetailedPeerCertificate, pin: string): string | null {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    chain.push(new X509Certificate(c.raw));
  }
  const leaf = chain[0];
  if (!leaf) return "no certificate";
  const ca = chain.find((c) => c.ca && caPin(c.toString()) === pin);
  if (!ca || !leaf.verify(ca.publicKey)) return "pin_mismatch";
  if (identityFromSubjectAltName(leaf.subjectAltName)?.role !== "manager") return "not a manager";
  const t = Date.now();
  if (Date.parse(leaf.validFrom) > t || Date.parse(leaf.validTo) < t) return "manager certificate not valid now";
  return null;
}

/** One join exchange: TLS, pin, POST, answer. */
function askToJoin(h: Host, host: string, port: number, join: JoinString): Promise<JoinAnswer> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ socket: fromOwnAddress(h, host, port), servername: JOIN_SERVERNAME, rejectUnauthorized: false, timeout: CONNECT_TIMEOUT_MS });
    socket.once("timeout", () => socket.destroy(new Error("join connect timed out")));
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      const wrong = pinned(socket.getPeerCertificate(true), join.pin);
      if (wrong) {
        socket.destroy();
        return reject(new Error(wrong));
      }
      const body = JSON.stringify({
        protocol: JOIN_PROTOCOL,
        ...(join.token ? { token: join.token } : {}),
        requestedId: h.id,
        hostname: h.id,
        csr: h.csrPem,
        waitMs: 20_000,
      });
      const req = request(
        { method: "POST", path: JOIN_PATH, createConnection: () => socket, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => {
            const parsed = JoinAnswer.safeParse((() => { try { return JSON.parse(text) as unknown; } catch { return null; } })());
            if (parsed.success) resolve(parsed.data);
            else reject(new Error(`HTTP ${res.statusCode}: not a join answer`));
          });
        },
      );
      req.once("error", reject);
      req.end(body);
    });
  });
}

async function join(h: Host, host: string, port: number, joinString: JoinString, done: () => void): Promise<void> {
  h.startedAt = now();
  for (let delay = 1000; !stopping; delay = Math.min(delay * 2, 30_000)) {
    h.attempts++;
    let answer: JoinAnswer;
    try {
      answer = await askToJoin(h, host, port, joinString);
    } catch (err) {
      count((err as { code?: string }).code ?? (err as Error).message.slice(0, 60));
      await new Promise((r) => setTimeout(r, Math.random() * delay));
      continue;
    }
    if (answer.status === "issued") {
      h.issuedAt = now();
      return session(h, host, port, answer.certificate, answer.ca, done);
    }
    if (answer.status === "pending") continue;
    count(answer.code);
    await new Promise((r) => setTimeout(r, answer.retryAfterMs ?? Math.random() * delay));
  }
}

/** The enrolled host's session, as the agent holds it: hello (renewable), heartbeats at the pace the manager sets. */
function session(h: Host, host: string, port: number, certPem: string, caPem: string, done: () => void): void {
  const ctx = createSecureContext({ ca: caPem, cert: certPem, key: h.keyPem, minVersion: "TLSv1.2" });
  let seq = 0;
  const ws = new WebSocket(`wss://${host}:${port}/worker`, {
    perMessageDeflate: false,
    maxPayload: MAX_FRAME_BYTES,
    handshakeTimeout: CONNECT_TIMEOUT_MS,
    createConnection: () => connect({ socket: fromOwnAddress(h, host, port), secureContext: ctx, checkServerIdentity: () => undefined }),
  } as ConstructorParameters<typeof WebSocket>[2]);
  h.ws = ws;
  ws.on("open", () =>
    ws.send(
      JSON.stringify({
        type: "hello",
        protocol: PROTOCOL_VERSION,
        id: h.id,
        hostname: h.id,
        agentVersion: "0.1.0",
        labels: { sim: "join" },
        platform: { os: "linux", arch: "x64", release: "6.1.0" },
        renewable: true,
      }),
    ),
  );
  const beat = () => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: "heartbeat", seq: seq++, metrics: metrics(seq) }));
  const pace = (interval: number) => {
    if (h.hb) clearInterval(h.hb);
    beat();
    h.hb = setInterval(beat, interval);
  };
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { type: string; heartbeatIntervalMs?: number; id?: string | number };
    if (msg.type === "welcome") {
      h.welcomedAt = now();
      pace(msg.heartbeatIntervalMs!);
      done();
    } else if (msg.type === "settings" && msg.heartbeatIntervalMs) pace(msg.heartbeatIntervalMs);
    else if (msg.type === "request") ws.send(JSON.stringify({ type: "response", id: msg.id, error: { code: "unsupported", message: "join simulator" } }));
  });
  ws.on("error", (err: Error & { code?: string }) => count(`session ${err.code ?? err.message.slice(0, 50)}`));
  ws.on("close", () => {
    if (h.hb) clearInterval(h.hb);
    if (!stopping) count("session closed");
  });
}

function stats(): JoinSimStats {
  return {
    total: hosts.length,
    issued: hosts.filter((h) => h.issuedAt > 0).length,
    welcomed: hosts.filter((h) => h.welcomedAt > 0).length,
    attempts: hosts.reduce((s, h) => s + h.attempts, 0),
    joinMs: hosts.filter((h) => h.issuedAt > 0).map((h) => h.issuedAt - h.startedAt),
    lastIssuedAt: Math.max(0, ...hosts.map((h) => h.issuedAt)),
    lastWelcomedAt: Math.max(0, ...hosts.map((h) => h.welcomedAt)),
    failures: Object.fromEntries(failures),
  };
}

const reply = (m: JoinSimReply) => process.send?.(m);

process.on("disconnect", () => process.exit(0));
process.on("message", (raw) => {
  const cmd = raw as JoinSimCommand;
  switch (cmd.op) {
    case "prepare":
      void (async () => {
        hosts = [];
        for (let i = cmd.from; i < cmd.to; i++) {
          const id = `join-${String(i).padStart(5, "0")}`;
          const { csrPem, keyPem } = await createCsr({ id });
          hosts.push({ id, address: loopbackAddress(i), keyPem, csrPem, startedAt: 0, issuedAt: 0, welcomedAt: 0, attempts: 0, ws: null, hb: null });
        }
        reply({ op: "prepared" });
      })();
      return;
    case "go": {
      const parsed = parseJoinString(cmd.join);
      if (!parsed.ok) throw new Error(parsed.error);
      let left = hosts.length;
      const done = () => {
        if (--left === 0) reply({ op: "joined", stats: stats() });
      };
      // All at once: every host dials in the same turn of the loop.
      for (const h of hosts) void join(h, cmd.host, cmd.port, parsed.join, done);
      return;
    }
    case "stats":
      return reply({ op: "stats", stats: stats() });
    case "quit":
      stopping = true;
      for (const h of hosts) {
        if (h.hb) clearInterval(h.hb);
        h.ws?.terminate();
      }
      return reply({ op: "ok" });
  }
});
reply({ op: "ready" });
