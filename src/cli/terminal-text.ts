// Text for a terminal: what the operator commands print is partly written by workers (host names, labels, output),
// and a terminal obeys escape sequences. Everything a worker controls goes through `cell` or `block` first.

// CSI (ESC [ … final), OSC / DCS / SOS / PM / APC strings (ended by BEL or ST), and the other two-byte escapes;
// the 8-bit forms (0x9b CSI, 0x9d OSC, …) too, which some terminals still honour.
// eslint-disable-next-line no-control-regex
const ESCAPES = /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]?/g;
// C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what follows them on screen.
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_LINES = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/** One line of worker text, safe for a table cell: escapes removed, other controls shown as `?`. */
export function cell(text: string): string {
  return text.replace(ESCAPES, "").replace(CONTROLS, "?");
}

/** Several lines of worker text (an action's output): as `cell`, keeping line breaks and tabs. */
export function block(text: string): string {
  return text.replace(/\r\n/g, "\n").replace(ESCAPES, "").replace(CONTROLS_BUT_LINES, "?");
}

/** `text` cut to `max` characters, ending in `…` when cut. */
export function fit(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join("")}…`;
}

export interface Style {
  /** Whether to colour: a terminal, and NO_COLOR unset (https://no-color.org). */
  color: boolean;
}

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Style {
  return { color: stream.isTTY === true && !env.NO_COLOR };
}

const SGR = { red: 31, green: 32, yellow: 33, grey: 90, bold: 1 } as const;
export type Tint = keyof typeof SGR;

export function paint(style: Style, tint: Tint | undefined, text: string): string {
  return style.color && tint ? `\x1b[${SGR[tint]}m${text}\x1b[0m` : text;
}

/** A table cell: its text (already safe) and how to colour it. */
export type Cell = string | { text: string; tint?: Tint };

const textOf = (c: Cell) => (typeof c === "string" ? c : c.text);
const width = (s: string) => [...s].length;

/**
 * Aligned columns, two spaces apart, the header first; colour is added after padding, so it never shifts a
 * column. Trailing spaces are trimmed.
 */
export function table(header: string[], rows: Cell[][], style: Style): string {
  const all = [header, ...rows.map((r) => r.map(textOf))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ""))));
  const line = (cells: Cell[], head: boolean) =>
    cells
      .map((c, i) => {
        const text = textOf(c);
        const padded = i === cells.length - 1 ? text : text + " ".repeat(widths[i]! - width(text));
        return head ? paint(style, "bold", padded) : paint(style, typeof c === "string" ? undefined : c.tint, padded);
      })
      .join("  ")
      .trimEnd();
  return [line(header, true), ...rows.map((r) => line(r, false))].join("\n");
}
