import type { Registry } from "../core/registry.js";
import type { Labels } from "../protocol/messages.js";
import { HOST_FIGURES } from "./hosts.js";
import { workerLabels } from "./labels.js";
import { PREFIX } from "./names.js";

const escapeValue = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function labelText(id: string, labels: Labels): string {
  let text = `worker="${escapeValue(id)}"`;
  for (const [name, value] of Object.entries(workerLabels(labels))) text += `,${name}="${escapeValue(value)}"`;
  return text;
}

const UP_HELP = "1 while a worker is connected and not unhealthy, else 0; labelled with its id and its own labels (label_*)";

/**
 * The series with one sample per worker: mcp_fleet_worker_up, and with `hosts` each connected worker's latest
 * heartbeat figures (labelled with its id only: its own labels are on worker_up, to join on). Written as
 * exposition text here rather than through prom-client, whose general formatting cost half a second a scrape for
 * the 110,000 samples of 10,000 workers; and each worker's series carries its own label names, which a prom-client
 * metric cannot. A worker's label text is kept between scrapes while its labels object stays the same one (a
 * new session brings a new one); a worker that left the registry leaves the next scrape's output and the cache.
 */
export class WorkerSeries {
  private texts = new Map<string, { labels: Labels; text: string }>();

  constructor(private readonly hosts: boolean) {}

  render(registry: Registry): string {
    const previous = this.texts;
    const texts = new Map<string, { labels: Labels; text: string }>();
    const up: string[] = [];
    const figures: string[][] = HOST_FIGURES.map(() => []);
    registry.forEachWorker((id, state, connected, labels, metrics) => {
      let cached = previous.get(id);
      if (cached?.labels !== labels) cached = { labels, text: labelText(id, labels) };
      texts.set(id, cached);
      up.push(`${PREFIX}worker_up{${cached.text}} ${connected && state !== "unhealthy" ? 1 : 0}`);
      if (!this.hosts || !connected || !metrics) return;
      const worker = `{worker="${escapeValue(id)}"} `;
      for (let i = 0; i < HOST_FIGURES.length; i++) {
        const value = HOST_FIGURES[i]!.of(metrics);
        if (value !== null && Number.isFinite(value)) figures[i]!.push(`${PREFIX}${HOST_FIGURES[i]!.name}${worker}${value}`);
      }
    });
    this.texts = texts;
    const families = [family("worker_up", UP_HELP, up)];
    if (this.hosts) HOST_FIGURES.forEach((f, i) => families.push(family(f.name, `${f.help} (reported by the worker)`, figures[i]!)));
    return families.join("\n\n") + "\n";
  }
}

function family(name: string, help: string, lines: string[]): string {
  const head = `# HELP ${PREFIX}${name} ${help}\n# TYPE ${PREFIX}${name} gauge`;
  return lines.length === 0 ? head : `${head}\n${lines.join("\n")}`;
}
