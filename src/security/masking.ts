/**
 * Masking for callers without `phi:read` (SPEC §9). Applied when a response is built, never to
 * stored data.
 *
 * String rules ("length" and "char" mean Unicode code points, so astral characters such as
 * emoji are never split into broken surrogate halves):
 * - `phi`: ≤ 4 chars → all `*`; else first 2 + `*` × (n − 4) + last 2. Length preserved.
 * - `restricted`: each whitespace-separated word keeps its first and last char, the middle
 *   becomes `*`; words of ≤ 2 chars are fully masked. Whitespace is kept; length preserved.
 * - `confidential`: first ⌊30 % · n⌋ chars + `...` + last ⌊10 % · n⌋ chars (so strings of
 *   fewer than 4 chars, including the empty string, become just `...`).
 * - `internal`, `public`: unchanged.
 *
 * `maskValue` decisions for non-strings (documented contract):
 * - numbers and bigints under `phi`, `restricted` or `confidential` become a string of `*`
 *   as long as their decimal form (`123.5` → `*****`): a partial number is still a disclosure,
 *   and keeping the length keeps the "same length" property of phi/restricted;
 * - booleans, null and undefined are unchanged (no meaningful partial form);
 * - arrays and plain objects are walked recursively; object keys are never masked (they are
 *   schema, not data); a `Date` is masked as its ISO string; a reference back to an enclosing
 *   object or array (a cycle) is replaced with `[Circular]`.
 */
import type { DataClassification } from './classification.ts';

const MASK = '*';

function codePoints(value: string): string[] {
  return Array.from(value);
}

/** `phi` rule. */
export function maskPhi(value: string): string {
  const chars = codePoints(value);
  const n = chars.length;
  if (n <= 4) return MASK.repeat(n);
  return chars.slice(0, 2).join('') + MASK.repeat(n - 4) + chars.slice(n - 2).join('');
}

function maskWord(word: string): string {
  const chars = codePoints(word);
  const n = chars.length;
  if (n <= 2) return MASK.repeat(n);
  return (chars[0] ?? '') + MASK.repeat(n - 2) + (chars[n - 1] ?? '');
}

/** `restricted` rule. */
export function maskRestricted(value: string): string {
  // Split keeping the separators (odd indexes) so whitespace is preserved exactly.
  return value
    .split(/(\s+)/u)
    .map((part, i) => (i % 2 === 1 ? part : maskWord(part)))
    .join('');
}

/** `confidential` rule. */
export function maskConfidential(value: string): string {
  const chars = codePoints(value);
  const n = chars.length;
  const head = Math.floor(n * 0.3);
  const tail = Math.floor(n * 0.1);
  // Explicit start index: slice(-0) would return the whole string.
  return chars.slice(0, head).join('') + '...' + chars.slice(n - tail).join('');
}

/** Masks one string according to its classification. */
export function maskString(value: string, classification: DataClassification): string {
  switch (classification) {
    case 'phi':
      return maskPhi(value);
    case 'restricted':
      return maskRestricted(value);
    case 'confidential':
      return maskConfidential(value);
    case 'internal':
    case 'public':
      return value;
  }
}

function isMasking(classification: DataClassification): boolean {
  return classification === 'phi' || classification === 'restricted' || classification === 'confidential';
}

function walk(value: unknown, classification: DataClassification, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return maskString(value, classification);
  if (typeof value === 'number' || typeof value === 'bigint') {
    return MASK.repeat(String(value).length);
  }
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? value : maskString(value.toISOString(), classification);
  }
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item: unknown) => walk(item, classification, seen));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      // defineProperty so a `__proto__` key stays an own data property, as JSON.parse makes it.
      Object.defineProperty(out, key, {
        value: walk(item, classification, seen),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/**
 * Returns a masked copy of `value` for a caller who may not see it in the clear (see the file
 * comment for the rules). `internal` and `public` values are returned as they are.
 */
export function maskValue(value: unknown, classification: DataClassification): unknown {
  if (!isMasking(classification)) return value;
  return walk(value, classification, new WeakSet());
}
