import type { Logger } from "../log.js";
import { FleetMetrics } from "../metrics/fleet-metrics.js";
import type { MetricsListen } from "../metrics/listen-address.js";
import { startMetricsListener, type MetricsListener } from "../metrics/listener.js";
import type { ManagerMetrics } from "../metrics/sink.js";

export interface ManagerMetricsEndpoint {
  /** The sink to give startManager; none when metrics are off. */
  readonly sink: ManagerMetrics | undefined;
  /** The manager listens for workers with its state loaded (true), or is stopping (false): what /readyz says. */
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

/**
 * The manager command's metrics: the sink and its listener, started before the manager so /healthz answers (and
 * /readyz says 503) while the state loads. A listener that cannot start leaves the sink counting, unread.
 */
export async function startManagerMetrics(listen: MetricsListen, hosts: boolean, log: Logger): Promise<ManagerMetricsEndpoint> {
  if (!listen) return { sink: undefined, setReady: () => {}, close: async () => {} };
  const metrics = new FleetMetrics({ hosts });
  let ready = false;
  const listener: MetricsListener | null = await startMetricsListener({
    host: listen.host,
    port: listen.port,
    render: () => metrics.render(),
    ready: () => ready,
    log,
  });
  return {
    sink: metrics,
    setReady: (r) => void (ready = r),
    close: async () => listener?.close(),
  };
}
