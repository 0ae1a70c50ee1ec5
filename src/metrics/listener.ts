import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";

export interface MetricsListenerOptions {
  host: string;
  port: number;
  render: () => Promise<{ body: string; contentType: string }>;
  /** Whether the manager listens for workers with its state loaded, and is not closing. */
  ready: () => boolean;
  log: Logger;
}

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

const text = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(body);
};

function handler(o: MetricsListenerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = new URL(req.url ?? "/", "http://metrics").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") return text(res, 405, "method not allowed\n", { allow: "GET, HEAD" });
    if (path === "/healthz") return text(res, 200, "ok\n");
    if (path === "/readyz") return o.ready() ? text(res, 200, "ready\n") : text(res, 503, "not ready\n");
    if (path !== "/metrics") return text(res, 404, "not found: /metrics, /healthz, /readyz\n");
    o.render().then(
      ({ body, contentType }) => {
        res.writeHead(200, { "content-type": contentType });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        o.log.error({ err: errorMessage(err) }, "metrics could not be rendered");
        text(res, 500, "metrics could not be rendered\n");
      },
    );
  };
}

/**
 * The metrics endpoint, plain HTTP on a listener of its own (docs/metrics.md). If it cannot listen (the port is
 * taken, say by a second manager on the same host), that is said once and the manager carries on without it:
 * resolves null. The fleet is the manager's job; its metrics are not worth dying for.
 */
export function startMetricsListener(o: MetricsListenerOptions): Promise<MetricsListener | null> {
  const server: Server = createServer(handler(o));
  // A scraper keeps its connection; Prometheus scrapes every few seconds, well within this.
  server.keepAliveTimeout = 65_000;
  server.requestTimeout = 10_000;
  // The manager's own sockets keep the process alive; this one must not keep a manager that failed to start.
  server.unref();
  return new Promise((resolve) => {
    server.once("error", (err: Error & { code?: string }) => {
      o.log.warn({ host: o.host, port: o.port, code: err.code, err: err.message }, "metrics listener not started: carrying on without metrics");
      resolve(null);
    });
    server.listen(o.port, o.host, () => {
      server.removeAllListeners("error");
      server.on("error", (err) => o.log.warn({ err: errorMessage(err) }, "metrics listener error"));
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : o.port;
      o.log.info({ host: o.host, port }, "metrics listening");
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
