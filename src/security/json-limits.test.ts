import { describe, expect, it } from 'vitest';
import { jsonDepthExceeds } from './json-limits.ts';

describe('jsonDepthExceeds', () => {
  const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);
  it('counts object and array nesting; top level is depth 1', () => {
    expect(jsonDepthExceeds('{}', 1)).toBe(false);
    expect(jsonDepthExceeds('{"a":{}}', 1)).toBe(true);
    expect(jsonDepthExceeds(nested(32), 32)).toBe(false);
    expect(jsonDepthExceeds(nested(33), 32)).toBe(true);
    expect(jsonDepthExceeds('[{"a":[{"b":[]}]}]', 5)).toBe(false);
    expect(jsonDepthExceeds('[{"a":[{"b":[[]]}]}]', 5)).toBe(true);
    expect(jsonDepthExceeds('"just a string"', 1)).toBe(false);
    expect(jsonDepthExceeds('12', 0)).toBe(false);
  });
  it('ignores brackets inside strings, including escaped quotes', () => {
    expect(jsonDepthExceeds(JSON.stringify({ s: '[[[[{{{{' }), 1)).toBe(false);
    expect(jsonDepthExceeds(JSON.stringify({ s: 'say \\"[[[\\" and "{{{' }), 1)).toBe(false);
    expect(jsonDepthExceeds(`{"s":"\\\\"}`, 1)).toBe(false); // an escaped backslash ends the string normally
    expect(jsonDepthExceeds(`{"s":"\\\\","t":{"u":{}}}`, 2)).toBe(true);
  });
  it('handles a huge hostile body in one pass', () => {
    expect(jsonDepthExceeds(nested(500_000), 32)).toBe(true);
  });
});
