import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { errorMessage } from "../../errors.js";
import { JOIN_PATH, JOIN_PROTOCOL, JOIN_SERVERNAME, JoinAnswer, type JoinRequest, type JoinString } from "../../protocol/join.js";
import { CONNECT_TIMEOUT_MS } from "../../protocol/messages.js";
import { chainFromPeer, checkManagerChain } from "./manager-chain.js";

/** What the joining worker says about itself; the token and the protocol come from the join string and this code. */
export type JoinFields = Pick<JoinRequest, "requestedId" | "hostname" | "csr" | "waitMs">;

/** The manager that answered, as its verified certificate chain names it. */
export interface ManagerSeen {
  url: string;
  /** The manager's id from its certificate. */
  id: string;
  /** The pinned CA's certificate as that manager presented it. */
  caPem: string;
}

/** Why an attempt got no answer. pin_mismatch and not_a_manager are decided before a byte is sent. */
export type JoinFailure = {
  status: "pin_mismatch" | "not_a_manager" | "unreachable" | "bad_answer" | "aborted";
  message: string;
};

export type JoinAttempt = (JoinAnswer & { manager: ManagerSeen }) | JoinFailure;

/** A JoinAnswer is a few kB; anything much longer is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** Beyond the long poll the manager may hold the answer for: time for the answer itself to arrive. */
const ANSWER_MARGIN_MS = 15_000;

export interface AskOptions {
  connectTimeoutMs?: number;
  now?: () => Date;
}

/** `wss://host:port` (as --manager and mDNS give it) or `https://host:port`: where to open TLS. */
function endpoint(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: Number(u.port || 443) };
}

/**
 * One join attempt against one manager. The TLS handshake asks for the join server name and checks nothing by
 * itself; the chain the server presented is then checked against the pin (checkManagerChain), and only a server
 * that passes hears the request, token and all. Never throws: every outcome is a value.
 */
export function askToJoin(url: string, join: JoinString, fields: JoinFields, signal: AbortSignal, options: AskOptions = {}): Promise<JoinAttempt> {
  return new Promise<JoinAttempt>((resolve) => {
    let settled = false;
    let socket: TLSSocket | null = null;
    let timer: NodeJS.Timeout | null = null;
    const finish = (result: JoinAttempt) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      socket?.destroy();
      resolve(result);
    };
    const onAbort = () => finish({ status: "aborted", message: "stopped" });
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    let target: { host: string; port: number };
    try {
      target = endpoint(url);
    } catch (err) {
      return finish({ status: "unreachable", message: `not a manager URL: ${errorMessage(err)}` });
    }
    timer = setTimeout(() => finish({ status: "unreachable", message: "the TLS handshake timed out" }), options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
    const s = tlsConnect({ host: target.host, port: target.port, servername: JOIN_SERVERNAME, rejectUnauthorized: false, minVersion: "TLSv1.2" });
    socket = s;
    s.on("error", (err) => finish({ status: "unreachable", message: errorMessage(err) }));
    s.once("secureConnect", () => {
      if (settled) return;
      let verdict;
      try {
        verdict = checkManagerChain(chainFromPeer(s.getPeerCertificate(true)), join.pin, options.now?.() ?? new Date());
      } catch (err) {
        verdict = { ok: false as const, status: "not_a_manager" as const, message: `unreadable certificate chain: ${errorMessage(err)}` };
      }
      if (!verdict.ok) return finish({ status: verdict.status, message: verdict.message });
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => finish({ status: "unreachable", message: "no answer in time" }), fields.waitMs + ANSWER_MARGIN_MS);
      const manager: ManagerSeen = { url, id: verdict.identity.id, caPem: verdict.ca.toString() };
      post(s, join, fields, (outcome) => finish("answer" in outcome ? { ...outcome.answer, manager } : outcome));
    });
  });
}

/** The JoinRequest over the checked socket, HTTP/1.1, one request, then the connection closes. */
function post(socket: TLSSocket, join: JoinString, fields: JoinFields, done: (o: { answer: JoinAnswer } | JoinFailure) => void): void {
  const request: JoinRequest = { protocol: JOIN_PROTOCOL, ...(join.token ? { token: join.token } : {}), ...fields };
  const body = Buffer.from(JSON.stringify(request));
  const req = httpRequest({
    method: "POST",
    path: JOIN_PATH,
    headers: { host: JOIN_SERVERNAME, "content-type": "application/json", "content-length": body.length, connection: "close" },
    // The socket is the one whose chain was checked: no agent, no second handshake.
    createConnection: () => socket,
  });
  req.on("error", (err) => done({ status: "unreachable", message: `the manager closed the connection: ${errorMessage(err)}` }));
  req.on("response", (res: IncomingMessage) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) return done({ status: "bad_answer", message: `an answer over ${MAX_ANSWER_BYTES} bytes` });
      chunks.push(chunk);
    });
    res.on("error", (err) => done({ status: "unreachable", message: errorMessage(err) }));
    res.on("end", () => {
      let json: unknown;
      try {
        json = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return done({ status: "bad_answer", message: `HTTP ${res.statusCode} with a body that is not JSON` });
      }
      const parsed = JoinAnswer.safeParse(json);
      if (!parsed.success) return done({ status: "bad_answer", message: `HTTP ${res.statusCode} with a body that is not a join answer` });
      done({ answer: parsed.data });
    });
  });
  req.end(body);
}
