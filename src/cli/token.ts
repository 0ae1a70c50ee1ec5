import { Command } from "commander";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { z } from "zod";
import { formatDuration } from "../config/duration.js";
import { fields, flag, loadConfig } from "../config/load.js";
import { APPROVAL_MODES, type JoinRequestView } from "../enroll/api.js";
import { decideRequest, pendingRequests, revokeToken, tokenView, type TokenView } from "../enroll/join-records.js";
import { readJoinFile, tokensPathBesideCa, updateJoinFile, type RequestRecord } from "../enroll/token-file.js";
import { newToken } from "../enroll/tokens.js";
import { FleetError } from "../errors.js";
import { certLayout } from "../pki/layout.js";
import { caPin } from "../pki/pin.js";
import { formatJoinString } from "../protocol/join.js";
import { duration, labelsField } from "./common.js";

const MIN_TTL_MS = 60_000;
const MAX_TTL_MS = 30 * 86_400_000;
const MAX_USES = 10_000;

const dirFlag = () => flag("--dir <dir>", "certificate directory (its ca.pem is pinned; tokens.json lives beside it)", "certs");
const tokensFlag = () => flag("--tokens <file>", "the join file, if not tokens.json in --dir (the manager's --tokens)");
const where = { dir: fields.path, tokens: fields.optionalPath };
const joinFilePath = (o: { dir: string; tokens?: string }) => o.tokens ?? tokensPathBesideCa(certLayout(o.dir).ca);

export function tokenCommand(): Command {
  const token = new Command("token").description("make join tokens for hosts to join the fleet by themselves; decide on join requests");
  token.addCommand(createCommand());

  token
    .command("list")
    .description("list the join tokens: id, status, uses, expiry, approval, labels (never the secret)")
    .addOption(dirFlag())
    .addOption(tokensFlag())
    .option("--json", "one JSON array, for scripts")
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(z.object({ ...where, json: z.boolean().optional() }), cmd);
      const now = new Date();
      const views = (await readJoinFile(joinFilePath(o))).tokens.map((t) => tokenView(t, now));
      console.log(o.json ? JSON.stringify(views, null, 2) : tokenTable(views));
    });

  token
    .command("revoke")
    .description("revoke a join token: no host joins with it from now on (hosts that joined keep their certificates)")
    .argument("<token-id>")
    .addOption(dirFlag())
    .addOption(tokensFlag())
    .action(async (id: string, _opts, cmd: Command) => {
      const o = loadConfig(z.object(where), cmd);
      const path = joinFilePath(o);
      const r = await updateJoinFile(path, (f) => revokeToken(f, id, new Date(), path));
      console.log(r.already ? `token ${id} was already revoked at ${r.record.revokedAt}` : `revoked token ${id}`);
    });

  token
    .command("requests")
    .description("list the join requests waiting for approval: request id, requested id, host, address, key, token, age")
    .addOption(dirFlag())
    .addOption(tokensFlag())
    .option("--json", "one JSON array, for scripts")
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(z.object({ ...where, json: z.boolean().optional() }), cmd);
      const now = new Date();
      const views = pendingRequests(await readJoinFile(joinFilePath(o)), now).map((r) => requestView(r, now));
      console.log(o.json ? JSON.stringify(views, null, 2) : requestTable(views));
    });

  for (const [name, decision] of [["approve", "approved"], ["deny", "denied"]] as const) {
    token
      .command(name)
      .description(
        decision === "approved"
          ? "approve a pending join request: the running manager issues the host's certificate"
          : "deny a pending join request: the host is told so and its key is refused until the request expires",
      )
      .argument("<request-id>")
      .addOption(dirFlag())
      .addOption(tokensFlag())
      .action(async (requestId: string, _opts, cmd: Command) => {
        const o = loadConfig(z.object(where), cmd);
        const path = joinFilePath(o);
        const r = await updateJoinFile(path, (f) => decideRequest(f, { requestId, decision, by: cliUser(), now: new Date(), path }));
        const next = decision === "approved" ? "the manager issues its certificate when it next reads the file" : "the host is refused";
        console.log(`${decision} join request ${r.requestId} (host ${r.hostname}, id "${r.requestedId}"): ${next}`);
      });
  }
  return token;
}

function createCommand(): Command {
  return new Command("create")
    .description("make a join token and print its join string, once: `mcp-fleet worker --join <string>` on a host")
    .addOption(dirFlag())
    .addOption(tokensFlag())
    .addOption(flag("--ttl <duration>", "how long it can be used (1m to 30d)", "1h"))
    .addOption(flag("--uses <n>", `how many hosts may join with it (1 to ${MAX_USES})`, "1"))
    .addOption(flag("--labels <k=v,...>", "labels put into the certificate of every host joining with it", ""))
    .addOption(flag("--approve <mode>", "auto: issue at once; manual: each host waits for `token approve`", "auto").choices(APPROVAL_MODES))
    .option("--replace", "a host may take an id another key holds (re-install); that key's certificates are revoked")
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(
        z.object({
          ...where,
          ttl: duration({ min: MIN_TTL_MS, max: MAX_TTL_MS }),
          uses: fields.positiveInt(MAX_USES),
          labels: labelsField,
          approve: z.enum(APPROVAL_MODES),
          replace: z.boolean().default(false),
        }),
        cmd,
      );
      const ca = certLayout(o.dir).ca;
      if (!existsSync(ca)) throw new FleetError("E_CERT", `no fleet CA in ${o.dir}: run \`mcp-fleet certs init --dir ${o.dir}\` first`);
      const pin = caPin(await readFile(ca));
      const now = new Date();
      const spec = { ttlMs: o.ttl, uses: o.uses, labels: o.labels, approve: o.approve, replace: o.replace, now };
      const made = await updateJoinFile(joinFilePath(o), (f) => {
        let t = newToken(spec);
        while (f.tokens.some((x) => x.id === t.record.id)) t = newToken(spec);
        f.tokens.push(t.record);
        return t;
      });
      console.log(formatJoinString({ token: { id: made.record.id, secret: made.secret }, pin }));
      const r = made.record;
      const labels = Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(",") || "none";
      console.error(
        `token ${r.id}: ${r.uses} use${r.uses === 1 ? "" : "s"}, approve ${r.approve}, labels ${labels}${r.replace ? ", may replace ids" : ""}, ` +
          `expires ${r.expiresAt} (in ${formatDuration(o.ttl)})\n` +
          "shown once: it is not stored. On each host: mcp-fleet worker --join '<the line above>'",
      );
    });
}

/** Who decided, for the manager's log and the file: the user behind sudo if there is one. */
function cliUser(): string {
  let name = process.getuid?.() === 0 ? process.env.SUDO_USER : undefined;
  if (!name) {
    try {
      name = userInfo().username;
    } catch {
      name = `uid-${process.getuid?.() ?? "unknown"}`;
    }
  }
  return `cli:${name.replace(/[^A-Za-z0-9._@-]/g, "_").slice(0, 64)}`;
}

function requestView(r: RequestRecord, now: Date): JoinRequestView {
  return {
    requestId: r.requestId,
    requestedId: r.requestedId,
    hostname: r.hostname,
    address: r.address,
    keyFingerprint: r.keyFingerprint,
    tokenId: r.tokenId,
    labels: { ...r.labels },
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    ageMs: Math.max(0, now.getTime() - Date.parse(r.createdAt)),
  };
}

const second = (iso: string) => iso.replace(/\.\d{3}Z$/, "Z");
const labelText = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(",");

function tokenTable(list: TokenView[]): string {
  if (list.length === 0) return "no join tokens (`mcp-fleet token create` makes one)";
  return table([
    ["ID", "STATUS", "USES", "EXPIRES", "APPROVE", "LABELS"],
    ...list.map((t) => [t.id, t.status, `${t.used}/${t.uses}`, second(t.expiresAt), t.approve + (t.replace ? "+replace" : ""), labelText(t.labels)]),
  ]);
}

function requestTable(list: JoinRequestView[]): string {
  if (list.length === 0) return "no join requests waiting for approval";
  return table([
    ["REQUEST", "ID", "HOST", "ADDRESS", "KEY", "TOKEN", "AGE"],
    ...list.map((r) => [r.requestId, r.requestedId, r.hostname, r.address ?? "", r.keyFingerprint, r.tokenId ?? "", formatDuration(r.ageMs)]),
  ]);
}

/** One aligned row per entry, as `certs list` prints them. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}
