import { join } from "node:path";

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
  };
}
