import type { Labels } from "../protocol/messages.js";

/*
 * The manager's side of hosts joining the fleet, as its MCP tools and its tests see it: the join requests that
 * wait for an operator, and the decisions on them. Tokens, the enrollment endpoint, issuing and renewal live in
 * this folder (docs/joining.md); src/mcp/ only calls this.
 */

export const APPROVAL_MODES = ["auto", "manual"] as const;
export type ApprovalMode = (typeof APPROVAL_MODES)[number];

/** Who decided: an MCP client (name and version from its initialize) or the command line. */
export interface Approver {
  via: "mcp" | "cli";
  name: string;
  version?: string;
  /** The operator certificate's id, for a decision made over HTTP. */
  operator?: string;
}

/** A join request waiting for an operator. Host name and requested id are the host's claims; address and key the manager saw. */
export interface JoinRequestView {
  /** 8 of a-z 0-9: what approve_join / deny_join / `mcp-fleet token approve` take. */
  requestId: string;
  /** The id the host asked for: what it will be called once approved. */
  requestedId: string;
  hostname: string;
  /** The address the request came from, as the manager saw it. */
  address: string | null;
  /** SHA-256 of the public key in its CSR, hex: compare with `mcp-fleet worker --show-key` on the host. */
  keyFingerprint: string;
  /** The token it presented (a token with approve=manual), or null: it had none. */
  tokenId: string | null;
  /** Labels it gets once approved (its token's). */
  labels: Labels;
  createdAt: string;
  expiresAt: string;
  ageMs: number;
}

export interface JoinDecisionResult {
  requestId: string;
  workerId: string;
  /** Approved: the certificate the host receives when it next asks (it is waiting). */
  serialNumber?: string;
  notAfter?: string;
}

export interface JoinService {
  /** False when the manager has no CA key: it then enrolls nobody, and says so to every joining host. */
  readonly enabled: boolean;
  /** Pending requests, oldest first. */
  listRequests(): JoinRequestView[];
  /** Issues the host's certificate; the host's waiting request gets it. Throws FleetError E_UNKNOWN_REQUEST. */
  approve(requestId: string, by: Approver): Promise<JoinDecisionResult>;
  /** Refuses the host; it is told `denied` and backs off. Throws FleetError E_UNKNOWN_REQUEST. */
  deny(requestId: string, by: Approver): Promise<JoinDecisionResult>;
}
