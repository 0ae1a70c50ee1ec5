import type { Labels } from "../protocol/messages.js";
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from "../protocol/text.js";
import { subjectAltNameUris } from "./san.js";

/**
 * Labels a token gives a host travel in its certificate, one subject alternative name URI each, so they are as
 * hard to forge as the identity beside them. Keys and values only hold URI-safe characters (letters, digits,
 * `.`, `_`, `-` and the key's `/`), so they go in as they are.
 */
const PREFIX = "urn:mcp-fleet:label:";

export function labelUris(labels: Labels): string[] {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${PREFIX}${key}=${value}`);
}

const NO_LABELS: Labels = Object.freeze({}) as Labels;

/** The labels in a certificate, from Node's `subjectaltname` text. A URI that is not a well-formed label is skipped. */
export function labelsFromSubjectAltName(san: string | undefined): Labels {
  let out: Labels | null = null;
  for (const uri of subjectAltNameUris(san)) {
    if (!uri.startsWith(PREFIX)) continue;
    const rest = uri.slice(PREFIX.length);
    const eq = rest.indexOf("=");
    if (eq < 0) continue;
    const key = rest.slice(0, eq);
    const value = rest.slice(eq + 1);
    if (!LABEL_KEY_PATTERN.test(key) || !LABEL_VALUE_PATTERN.test(value)) continue;
    (out ??= {})[key] = value;
  }
  // Most certificates carry none: they share one frozen empty object.
  return out ?? NO_LABELS;
}
