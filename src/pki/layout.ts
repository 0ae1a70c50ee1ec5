import { join } from "node:path";
import type { ClientRole } from "./identity.js";

/** The directory each client role's certificates are written to, beside the CA. */
const CLIENT_DIRS: Record<ClientRole, string> = { worker: "workers", operator: "operators", viewer: "viewers" };

/** The files `mcp-fleet certs` writes (the layout README.md documents). */
export function certLayout(dir: string) {
  return {
    dir,
    ca: join(dir, "ca.pem"),
    caKey: join(dir, "ca-key.pem"),
    manager: join(dir, "manager.pem"),
    managerKey: join(dir, "manager-key.pem"),
    crl: join(dir, "crl.pem"),
    inventory: join(dir, "inventory.json"),
    workersDir: join(dir, "workers"),
    worker: (id: string) => join(dir, "workers", `${id}.pem`),
    workerKey: (id: string) => join(dir, "workers", `${id}-key.pem`),
    clientDir: (role: ClientRole) => join(dir, CLIENT_DIRS[role]),
    client: (role: ClientRole, id: string) => join(dir, CLIENT_DIRS[role], `${id}.pem`),
    clientKey: (role: ClientRole, id: string) => join(dir, CLIENT_DIRS[role], `${id}-key.pem`),
  };
}
