/**
 * The URIs in Node's `subjectAltName` text ("DNS:a, URI:spiffe://..."). Node quotes entries that hold separators
 * as JSON strings, so both forms are read.
 */
export function subjectAltNameUris(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  for (const m of san.matchAll(/URI:(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))/g)) {
    out.push(m[1] !== undefined ? (JSON.parse(`"${m[1]}"`) as string) : m[2]!);
  }
  return out;
}
