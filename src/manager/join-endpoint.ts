import { X509Certificate } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { z } from "zod";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { LogThrottle } from "../log-throttle.js";
import {
  JOIN_PATH,
  JOIN_REFUSAL_STATUS,
  JOIN_REFUSAL_TEXT,
  JoinRequest,
  MAX_JOIN_BODY_BYTES,
  type JoinAnswer,
  type JoinRefusal,
} from "../protocol/join.js";
import type { FrontDoor } from "./front-door.js";
import type { SessionRate } from "./session-rate.js";
import { peerAddress } from "./upgrade.js";

/** What decides a well-formed join request (src/enroll/service.ts). */
export interface JoinDecider {
  join(request: JoinRequest, address: string | null, signal: AbortSignal): Promise<JoinAnswer>;
}

export interface JoinEndpointParts {
  service: JoinDecider;
  /** Join requests per source address. */
  rate: SessionRate;
  door: Pick<FrontDoor, "upgraded">;
  throttle: LogThrottle;
  log: Logger;
  /** The whole body must arrive within this: once its request is in, the front door no longer times the socket. */
  bodyTimeoutMs: number;
}

// A full pending list is a standing condition, not an event per request: said once a minute.
const TOO_MANY_LOG_EVERY_MS = 60_000;
const MESSAGE_MAX = 120;

class BodyTooLarge extends Error {}

/** Reads the body, at most `max` bytes; rejects with BodyTooLarge past it, or on the deadline or a reset. */
function readBody(req: IncomingMessage, max: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > max) return reject(new BodyTooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => fail(new Error("body not received in time")), timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      req.removeAllListeners("data");
      reject(err);
    };
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return fail(new BodyTooLarge());
      chunks.push(chunk);
    });
    req.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.on("error", fail);
  });
}

/** The first problem zod found, by field, with its rule: never the value, which is the sender's text. */
function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return JOIN_REFUSAL_TEXT.bad_request;
  const field = issue.path.length > 0 ? issue.path.join(".") : "body";
  const rule = issue.code === "unrecognized_keys" ? `unknown field ${issue.keys.join(",")}` : issue.message;
  return `${JOIN_REFUSAL_TEXT.bad_request}: ${field}: ${rule}`;
}

/** Printable ASCII within the answer's bound. */
function fit(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, MESSAGE_MAX);
}

function send(res: ServerResponse, status: number, answer: JoinAnswer): void {
  const body = JSON.stringify(answer);
  // Every answer ends its connection: a joining host asks again on a new one, through the rate and the front door.
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

/**
 * The HTTPS `request` listener for join sockets (TLS connections with no client certificate that named
 * JOIN_SERVERNAME; see `gateUnauthorized`). One POST of a JoinRequest to JOIN_PATH, judged in order: the
 * source address's rate, the body's size, its shape; then the enrollment service decides. A pending request's
 * answer may be held up to the request's `waitMs` (long poll); a host that goes away ends the wait.
 */
export function joinRequestHandler(p: JoinEndpointParts): (req: IncomingMessage, res: ServerResponse) => void {
  let tooManyLoggedAt = -Infinity;

  const refuse = (
    res: ServerResponse,
    code: JoinRefusal,
    fields: { address: string | null; tokenId?: string; requestedId?: string },
    message: string = JOIN_REFUSAL_TEXT[code],
    retryAfterMs?: number,
    status: number = JOIN_REFUSAL_STATUS[code],
  ) => {
    if (code === "too_many_pending") {
      const now = performance.now();
      if (now - tooManyLoggedAt >= TOO_MANY_LOG_EVERY_MS) {
        tooManyLoggedAt = now;
        p.log.warn({ ...fields, code }, "join refused");
      }
    } else {
      p.throttle.warn(`join-refused-${code}`, { ...fields, code }, "join refused");
    }
    send(res, status, { status: "refused", code, message: fit(message), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  };

  return (req, res) => {
    const socket = req.socket as TLSSocket;
    // From here the connection is timed by the body deadline and the request's own wait, not the upgrade timer.
    p.door.upgraded(socket);
    const address = peerAddress(socket);
    const path = new URL(req.url ?? "/", "https://manager").pathname;
    if (path !== JOIN_PATH) {
      res.writeHead(404, { "content-type": "text/plain", connection: "close" });
      return void res.end(`mcp-fleet manager: a connection without a client certificate may only POST ${JOIN_PATH}\n`);
    }
    if (req.method !== "POST") {
      res.writeHead(405, { "content-type": "text/plain", allow: "POST", connection: "close" });
      return void res.end(`mcp-fleet manager: ${JOIN_PATH} takes a POST of a join request\n`);
    }
    const key = address ?? "unknown";
    if (!p.rate.take(key)) return refuse(res, "rate_limited", { address }, undefined, p.rate.retryAfterMs(key));
    void handle(req, res, address);
  };

  async function handle(req: IncomingMessage, res: ServerResponse, address: string | null): Promise<void> {
    let body: Buffer;
    try {
      body = await readBody(req, MAX_JOIN_BODY_BYTES, p.bodyTimeoutMs);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        refuse(res, "bad_request", { address }, `${JOIN_REFUSAL_TEXT.bad_request}: body over ${MAX_JOIN_BODY_BYTES} bytes`, undefined, 413);
        // The rest of the body is not kept: the connection ends with the answer.
        req.resume();
        res.on("finish", () => req.socket.destroy());
      } else {
        p.throttle.warn("join-body", { address, err: errorMessage(err) }, "join request body not read");
        req.socket.destroy();
      }
      return;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(body.toString("utf8"));
    } catch {
      return refuse(res, "bad_request", { address }, `${JOIN_REFUSAL_TEXT.bad_request}: body: not JSON`);
    }
    const parsed = JoinRequest.safeParse(raw);
    if (!parsed.success) return refuse(res, "bad_request", { address }, describeIssue(parsed.error));
    const request = parsed.data;
    const fields = { address, tokenId: request.token?.id, requestedId: request.requestedId };

    const aborted = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) aborted.abort();
    });
    let answer: JoinAnswer;
    try {
      answer = await p.service.join(request, address, aborted.signal);
    } catch (err) {
      p.log.error({ ...fields, err: errorMessage(err) }, "join request failed");
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { "content-type": "text/plain", connection: "close" });
        res.end("mcp-fleet manager: the join request failed; see the manager's log\n");
      }
      return;
    }
    if (aborted.signal.aborted || res.destroyed) return;
    if (answer.status === "refused") return refuse(res, answer.code, fields, answer.message, answer.retryAfterMs);
    if (answer.status === "issued") {
      const serial = new X509Certificate(answer.certificate).serialNumber.toLowerCase();
      p.log.info({ id: answer.id, serial, tokenId: request.token?.id ?? null, address }, "host joined");
    }
    send(res, answer.status === "pending" ? 202 : 200, answer);
  }
}
