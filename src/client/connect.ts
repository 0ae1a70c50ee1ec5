import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { ClientCapabilities, Implementation } from "@modelcontextprotocol/sdk/types.js";
import { Agent, fetch as undiciFetch } from "undici";
import { MCP_ROLES } from "../mcp/principal.js";
import { loadTlsMaterial, mcpClientOptions, type TlsMaterial } from "../tls/contexts.js";

export interface ConnectOptions {
  /** The manager's MCP endpoint, e.g. https://manager.example:7443/mcp. */
  url: string | URL;
  /** Files: the fleet CA, and an operator's or viewer's certificate and key (`certs issue --role operator <name>`). */
  ca: string;
  cert: string;
  key: string;
  clientInfo: Implementation;
  capabilities?: ClientCapabilities;
}

/**
 * A fetch that presents `m`'s certificate and accepts only a manager of its fleet (src/tls/contexts.ts): Node's
 * global fetch cannot take a client certificate, undici's can, through its dispatcher. `close` ends its
 * connections. `agentOptions` tune undici's Agent (a long-lived event stream wants `bodyTimeout: 0`).
 */
export function mutualTlsFetch(m: TlsMaterial, agentOptions: Omit<Agent.Options, "connect"> = {}): { fetch: FetchLike; close: () => Promise<void> } {
  const agent = new Agent({ ...agentOptions, connect: mcpClientOptions(m) });
  const fetch: FetchLike = (url, init) =>
    // The SDK speaks the WHATWG fetch types; undici's are the same shapes under its own names.
    undiciFetch(url, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: agent }) as unknown as Promise<Response>;
  return { fetch, close: () => agent.close() };
}

/**
 * An SDK Client connected to a manager's /mcp over Streamable HTTP with mutual TLS. Closing the client ends its
 * session on the manager (a DELETE, so it does not hold one of `--max-mcp-sessions` until it is idle), then its
 * connections.
 */
export async function connectToManager(options: ConnectOptions): Promise<Client> {
  const material = loadTlsMaterial({ ca: options.ca, cert: options.cert, key: options.key }, MCP_ROLES);
  const tls = mutualTlsFetch(material);
  const transport = new StreamableHTTPClientTransport(new URL(options.url), { fetch: tls.fetch });
  // The SDK's client chains its own close handler after this one.
  transport.onclose = () => void tls.close().catch(() => {});
  const client = new Client(options.clientInfo, { capabilities: options.capabilities ?? {} });
  try {
    await client.connect(transport);
  } catch (err) {
    await tls.close().catch(() => {});
    throw err;
  }
  const close = client.close.bind(client);
  client.close = async () => {
    await transport.terminateSession().catch(() => {});
    await close();
  };
  return client;
}
