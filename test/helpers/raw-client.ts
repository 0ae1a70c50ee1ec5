import { readFileSync } from "node:fs";
import { WebSocket, type ClientOptions } from "ws";
import { PROTOCOL_VERSION } from "../../src/protocol/messages.js";

export interface RawOutcome {
  opened: boolean;
  closeCode: number | null;
  closeReason: string;
  error: string | null;
}

/**
 * A bare WebSocket client with whatever TLS material a test gives it, for peers that the real worker would
 * never be: no certificate, the wrong one, a lying hello, garbage frames.
 */
export function rawClient(
  url: string,
  tls: { ca: string; cert?: string; key?: string },
  onOpen?: (ws: WebSocket) => void,
): { ws: WebSocket; done: Promise<RawOutcome> } {
  const ws = new WebSocket(`${url}/worker`, {
    ca: readFileSync(tls.ca),
    cert: tls.cert ? readFileSync(tls.cert) : undefined,
    key: tls.key ? readFileSync(tls.key) : undefined,
    // The manager's role is checked by the real worker; these probes only care about the manager's verdict.
    // (@types/ws types this callback as returning boolean; Node wants Error | undefined.)
    checkServerIdentity: (() => undefined) as unknown as ClientOptions["checkServerIdentity"],
    perMessageDeflate: false,
  });
  const outcome: RawOutcome = { opened: false, closeCode: null, closeReason: "", error: null };
  const done = new Promise<RawOutcome>((resolve) => {
    ws.on("open", () => {
      outcome.opened = true;
      onOpen?.(ws);
    });
    ws.on("error", (err) => (outcome.error = `${(err as { code?: string }).code ?? ""} ${err.message}`));
    ws.on("close", (code, reason) => {
      outcome.closeCode = code;
      outcome.closeReason = reason.toString();
      resolve(outcome);
    });
  });
  return { ws, done };
}

export function helloFor(id: string) {
  return {
    type: "hello",
    protocol: PROTOCOL_VERSION,
    id,
    hostname: "test-host",
    agentVersion: "0.0.0-test",
    labels: {},
    platform: { os: "linux", arch: "x64", release: "test" },
  };
}
