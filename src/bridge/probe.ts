import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { z } from "zod";

const RefusalBody = z.object({ error: z.object({ message: z.string() }) });

/**
 * One request without a session, before stdio is served: it shows at once whether the manager takes our
 * certificate (a healthy one answers 400, "start with initialize"), so a wrong CA or a worker's certificate ends
 * the bridge with a message instead of a client that cannot tell why nothing works. Throws what it met.
 */
export async function probe(url: URL, fetch: FetchLike): Promise<void> {
  const res = await fetch(url, { method: "GET", headers: { accept: "text/event-stream" } });
  const text = await res.text().catch(() => "");
  if (res.status !== 401 && res.status !== 403) return;
  let message = text.slice(0, 500);
  try {
    const body = RefusalBody.safeParse(JSON.parse(text));
    if (body.success) message = body.data.error.message;
  } catch {
    // not JSON: the text as it is
  }
  throw new StreamableHTTPError(res.status, message);
}
