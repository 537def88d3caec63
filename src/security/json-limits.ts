/**
 * Input limits for JSON bodies: a nesting-depth check made on the raw text, before parsing, so
 * a hostile body (`[[[[…` a million deep within the size limit) never builds a deep object
 * graph that recursive code (validation, masking, canonicalisation) would then walk.
 */

/** Default maximum nesting depth of a request body (objects and arrays). */
export const DEFAULT_JSON_MAX_DEPTH = 32;

/**
 * True when the JSON text nests objects/arrays deeper than `maxDepth` (a top-level object is
 * depth 1). Brackets inside strings are ignored; the text need not be valid JSON (the parser
 * reports that separately). One linear pass, no allocation.
 */
export function jsonDepthExceeds(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}
