/**
 * JavaScript arrays as PostgreSQL array literals for `pg` query parameters. `pg` serialises an
 * array parameter itself (`arrayString`), running two regular-expression replaces on every
 * element; the hot statements pass arrays of hundreds of ids and texts (a batch's `unnest`
 * columns), where that was 8 % of the server's allocations at 500 creates/s. This writes the
 * same text — `{"a","b",NULL}`, every element quoted, `\` and `"` escaped — with one pass over
 * the strings that hold either character and none over the others. Arrays holding anything but
 * strings, numbers, booleans and null/undefined (nested arrays, buffers, dates, objects) are
 * left to `pg`.
 */
export function arrayLiteral(values: readonly unknown[]): string | null {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'string') out += quoted(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out += `"${String(v)}"`;
    else return null;
  }
  return `${out}}`;
}

function quoted(s: string): string {
  if (!s.includes('"') && !s.includes('\\')) return `"${s}"`;
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}

/** `params` with every flat array of plain values written as its literal (the others untouched). */
export function withArrayLiterals(params: unknown[]): unknown[] {
  let out: unknown[] | null = null;
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (!Array.isArray(p)) continue;
    const lit = arrayLiteral(p);
    if (lit === null) continue;
    out ??= params.slice();
    out[i] = lit;
  }
  return out ?? params;
}
