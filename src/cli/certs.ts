import { Command } from "commander";
import { z } from "zod";
import { fields, flag, loadConfig } from "../config/load.js";
import { initFleet, issueWorker, revokeWorker } from "../pki/store.js";

const dirFlag = () => flag("--dir <dir>", "certificate directory", "certs");

export function certsCommand(): Command {
  const certs = new Command("certs").description("create the fleet CA and certificates, and revoke them");

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
    .description("create a worker's certificate and key")
    .argument("<worker-id>", "the worker's id: a DNS label, usually its host name")
    .addOption(dirFlag())
    .addOption(flag("--days <n>", "validity in days", "365"))
    .option("--force", "replace an existing certificate for this id")
    .action(async (workerId: string, _opts, cmd: Command) => {
      const o = loadConfig(
        z.object({ dir: fields.path, days: fields.positiveInt(36500), force: z.boolean().optional() }),
        cmd,
      );
      const r = await issueWorker({ dir: o.dir, id: workerId, days: o.days, force: o.force });
      console.log(`issued worker "${r.id}" (serial ${r.serialNumber}, expires ${r.notAfter.toISOString()}):`);
      console.log(`  ${r.cert}\n  ${r.key}`);
    });

  certs
    .command("revoke")
    .description("add a worker's certificate to the CRL")
    .argument("<worker-id>")
    .addOption(dirFlag())
    .action(async (workerId: string, _opts, cmd: Command) => {
      const o = loadConfig(z.object({ dir: fields.path }), cmd);
      const r = await revokeWorker({ dir: o.dir, id: workerId });
      console.log(`revoked worker "${r.id}" (serial ${r.serialNumber}); CRL written to ${r.crl}`);
    });

  return certs;
}
