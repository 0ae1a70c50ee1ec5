import { z } from "zod";

export const DEFAULT_METRICS_LISTEN = "127.0.0.1:9464";

/** `host:port` (an IPv6 host in brackets), or `off`: where the metrics listener binds, or null for none. */
export const MetricsListen = z
  .string()
  .transform((text, ctx) => {
    if (text === "off") return null;
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
    const port = m ? Number(m[3]) : NaN;
    if (!m || port > 65535) {
      ctx.addIssue({ code: "custom", message: 'must be host:port (IPv6 as [addr]:port), or "off"' });
      return z.NEVER;
    }
    return { host: m[1] ?? m[2]!, port };
  });
export type MetricsListen = z.output<typeof MetricsListen>;
