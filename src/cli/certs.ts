import { Command, Option } from "commander";
import { z } from "zod";
import { fields, flag, loadConfig } from "../config/load.js";
import { FleetError } from "../errors.js";
import { CLIENT_ROLES, ROLES } from "../pki/identity.js";
import { initFleet, issueClient, listCertificates, revokeClient, type ListedCertificate } from "../pki/store.js";
import { loadTlsMaterial } from "../tls/contexts.js";

const dirFlag = () => flag("--dir <dir>", "certificate directory", "certs");
const clientRoleFlag = (what: string) => new Option("--role <role>", what).choices(CLIENT_ROLES).default("worker");

export function certsCommand(): Command {
  const certs = new Command("certs").description("create the fleet CA and certificates, list and revoke them");

  certs
    .command("init")
    .description("create the fleet CA, the manager's certificate and an empty CRL")
    .addOption(dirFlag())
    .addOption(flag("--fleet <name>", "fleet name (a DNS label); workers only trust managers of their fleet", "default"))
    .addOption(flag("--days <n>", "CA validity in days", "3650"))
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(z.object({ dir: fields.path, fleet: z.string(), days: fields.positiveInt(36500) }), cmd);
      const result = await initFleet({ dir: o.dir, fleet: o.fleet, days: o.days });
      console.log(`created fleet "${result.fleet}":`);
      for (const f of result.files) console.log(`  ${f}`);
      console.log(`keep ${o.dir}/ca-key.pem secret: it signs every identity in the fleet`);
    });

  certs
    .command("issue")
    .description("create a worker's certificate and key, or an operator's or viewer's for the manager's /mcp endpoint")
    .argument("<id>", "the worker's id (a DNS label, usually its host name), or the person's name (a DNS label)")
    .addOption(dirFlag())
    .addOption(clientRoleFlag("worker (workers/), operator (operators/: may act) or viewer (viewers/: may only read)"))
    .addOption(flag("--days <n>", "validity in days", "365"))
    .option("--force", "replace an existing certificate for this id")
    .action(async (id: string, _opts, cmd: Command) => {
      const o = loadConfig(
        z.object({ dir: fields.path, role: z.enum(CLIENT_ROLES), days: fields.positiveInt(36500), force: z.boolean().optional() }),
        cmd,
      );
      const r = await issueClient({ dir: o.dir, id, role: o.role, days: o.days, force: o.force });
      console.log(`issued ${o.role} "${r.id}" (serial ${r.serialNumber}, expires ${r.notAfter.toISOString()}):`);
      console.log(`  ${r.cert}\n  ${r.key}`);
    });

  certs
    .command("revoke")
    .description("put every unexpired certificate issued to an id on the CRL (renewed ones included)")
    .argument("<id>")
    .addOption(dirFlag())
    .addOption(clientRoleFlag("whose id it is: worker, operator or viewer"))
    .action(async (id: string, _opts, cmd: Command) => {
      const o = loadConfig(z.object({ dir: fields.path, role: z.enum(CLIENT_ROLES) }), cmd);
      const r = await revokeClient({ dir: o.dir, id, role: o.role });
      const serials = (list: string[]) => (list.length === 1 ? `serial ${list[0]}` : `serials ${list.join(", ")}`);
      const done = r.revoked.length > 0 ? `revoked ${serials(r.revoked)}` : "nothing left to revoke";
      const before = r.alreadyRevoked.length > 0 ? `; already revoked: ${serials(r.alreadyRevoked)}` : "";
      console.log(`${r.role} "${r.id}": ${done}${before}; CRL number ${r.crlNumber} written to ${r.crl}`);
    });

  certs
    .command("list")
    .description("list every certificate issued from this directory: id, role, serial, validity, revoked or not")
    .addOption(dirFlag())
    .option("--json", "one JSON array, for scripts")
    .action(async (_opts, cmd: Command) => {
      const o = loadConfig(z.object({ dir: fields.path, json: z.boolean().optional() }), cmd);
      const list = await listCertificates({ dir: o.dir });
      console.log(o.json ? JSON.stringify(list, null, 2) : table(list));
    });

  certs
    .command("check")
    .description("check that a CA, a certificate and its key belong together; print whose it is and until when")
    .addOption(flag("--ca <file>", "fleet CA certificate", "certs/ca.pem"))
    .addOption(flag("--cert <file>", "certificate to check"))
    .addOption(flag("--key <file>", "its private key"))
    .addOption(new Option("--role <role>", "the role it must have").choices(ROLES).default("worker"))
    .action((_opts, cmd: Command) => {
      const o = loadConfig(z.object({ ca: fields.path, cert: fields.path, key: fields.path, role: z.enum(ROLES) }), cmd);
      const m = loadTlsMaterial({ ca: o.ca, cert: o.cert, key: o.key }, o.role);
      const { fleet, role, id } = m.self.identity;
      const days = Math.floor((m.self.notAfter.getTime() - Date.now()) / 86_400_000);
      console.log(`${role} "${id}" of fleet "${fleet}", serial ${m.self.serialNumber}, valid until ${m.self.notAfter.toISOString()} (${days} days)`);
      if (days < 0) throw new FleetError("E_CERT", `${o.cert} expired on ${m.self.notAfter.toISOString()}`);
    });

  return certs;
}

/** The human view of `certs list`: one aligned row per certificate, dates to the second. */
function table(list: ListedCertificate[]): string {
  const day = (iso: string) => iso.replace(/\.\d{3}Z$/, "Z");
  const rows = [
    ["ID", "ROLE", "SERIAL", "NOT AFTER", "STATUS", "CURRENT"],
    ...list.map((c) => [
      c.id,
      c.role,
      c.serialNumber,
      day(c.notAfter),
      c.status === "revoked" ? `revoked ${day(c.revokedAt!)}` : c.status,
      c.current ? "yes" : "",
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}
