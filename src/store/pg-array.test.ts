import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { arrayLiteral, withArrayLiterals } from './pg-array.ts';

// pg's own serialiser, the reference this must match.
const pgPrepare = (createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (v: unknown) => unknown }).prepareValue;

describe('arrayLiteral', () => {
  it('writes what pg writes for flat arrays of strings, numbers, booleans and nulls', () => {
    const element = fc.oneof(fc.string({ unit: 'grapheme' }), fc.constantFrom('"', '\\', '\\"', 'a,b', '{}', 'NULL', ' '), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined));
    fc.assert(fc.property(fc.array(element, { maxLength: 20 }), (arr) => {
      expect(arrayLiteral(arr)).toBe(pgPrepare(arr));
    }), { numRuns: 500 });
  });

  it('leaves nested arrays, buffers, dates and objects to pg', () => {
    expect(arrayLiteral([['a']])).toBeNull();
    expect(arrayLiteral([Buffer.from('x')])).toBeNull();
    expect(arrayLiteral([new Date(0)])).toBeNull();
    expect(arrayLiteral([{ a: 1 }])).toBeNull();
    expect(arrayLiteral([])).toBe('{}');
  });

  it('replaces only the flat arrays of a parameter list, without touching the caller\'s list', () => {
    const params = [['a"b', null], 'text', 3, [[1]], null];
    const out = withArrayLiterals(params);
    expect(out).toEqual(['{"a\\"b",NULL}', 'text', 3, [[1]], null]);
    expect(params[0]).toEqual(['a"b', null]);
    const untouched = ['x', 1];
    expect(withArrayLiterals(untouched)).toBe(untouched);
  });
});
