import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DataClassification } from './classification.ts';
import { maskConfidential, maskPhi, maskRestricted, maskString, maskValue } from './masking.ts';

const cpLength = (s: string): number => Array.from(s).length;

describe('phi: ≤ 4 chars all *, else first 2 + * + last 2', () => {
  it.each([
    ['', ''],
    ['a', '*'],
    ['ab', '**'],
    ['abc', '***'],
    ['abcd', '****'],
    ['abcde', 'ab*de'],
    ['abcdef', 'ab**ef'],
    ['John Smith', 'Jo******th'],
    ['555-12-3456', '55*******56'],
    ['  ab  ', '  **  '],
    ['日本語テキスト', '日本***スト'],
    ['😀😁😂😃', '****'],
    ['😀😁😂😃😄', '😀😁*😃😄'],
    ['é', '*'],
  ])('%j → %j', (input, expected) => {
    expect(maskPhi(input)).toBe(expected);
    expect(maskString(input, 'phi')).toBe(expected);
  });
});

describe('restricted: per word keep first and last, words ≤ 2 fully masked', () => {
  it.each([
    ['', ''],
    ['a', '*'],
    ['ab', '**'],
    ['abc', 'a*c'],
    ['abcd', 'a**d'],
    ['abcde', 'a***e'],
    ['John Smith', 'J**n S***h'],
    ['I am ok now', '* ** ** n*w'],
    ['Dr. Jane  Doe\tMD', 'D*. J**e  D*e\t**'],
    [' leading and trailing ', ' l*****g a*d t******g '],
    ['line1\nline2', 'l***1\nl***2'],
    ['naïve café', 'n***e c**é'],
    ['😀😁😂', '😀*😂'],
    ['日本 語', '** *'],
  ])('%j → %j', (input, expected) => {
    expect(maskRestricted(input)).toBe(expected);
    expect(maskString(input, 'restricted')).toBe(expected);
  });
});

describe('confidential: first ⌊30 %⌋, "...", last ⌊10 %⌋', () => {
  it.each([
    ['', '...'],
    ['a', '...'],
    ['abc', '...'],
    ['abcd', 'a...'],
    ['abcde', 'a...'],
    ['abcdefghij', 'abc...j'],
    ['abcdefghijklmnopqrst', 'abcdef...st'],
    ['Quarterly revenue figures', 'Quarter...es'],
    ['😀😁😂😃😄😅😆😇😈😉', '😀😁😂...😉'],
  ])('%j → %j', (input, expected) => {
    expect(maskConfidential(input)).toBe(expected);
    expect(maskString(input, 'confidential')).toBe(expected);
  });
});

describe('internal and public are unchanged', () => {
  it.each(['internal', 'public'] as const)('%s', (classification) => {
    expect(maskString('John Smith', classification)).toBe('John Smith');
    const value = { a: 'John', n: 5, list: ['x'] };
    expect(maskValue(value, classification)).toBe(value);
  });
});

describe('maskValue', () => {
  it('walks objects and arrays, masking string leaves and keeping keys', () => {
    const value = {
      patient_name: 'John Smith',
      notes: ['Feeling anxious', 'ok'],
      nested: { diagnosis: 'Generalized anxiety' },
      active: true,
      missing: null,
    };
    expect(maskValue(value, 'phi')).toEqual({
      patient_name: 'Jo******th',
      notes: ['Fe***********us', '**'],
      nested: { diagnosis: 'Ge***************ty' },
      active: true,
      missing: null,
    });
    expect(maskValue(value, 'restricted')).toEqual({
      patient_name: 'J**n S***h',
      notes: ['F*****g a*****s', '**'],
      nested: { diagnosis: 'G*********d a*****y' },
      active: true,
      missing: null,
    });
  });

  it('masks numbers and bigints as * of their decimal length under phi, restricted and confidential', () => {
    for (const c of ['phi', 'restricted', 'confidential'] as const) {
      expect(maskValue(42, c)).toBe('**');
      expect(maskValue(-3.25, c)).toBe('*****');
      expect(maskValue(0, c)).toBe('*');
      expect(maskValue(12345678901234567890n, c)).toBe('*'.repeat(20));
      expect(maskValue({ score: 0.87 }, c)).toEqual({ score: '****' });
    }
    expect(maskValue(42, 'internal')).toBe(42);
  });

  it('leaves booleans, null and undefined as they are', () => {
    expect(maskValue(true, 'phi')).toBe(true);
    expect(maskValue(false, 'restricted')).toBe(false);
    expect(maskValue(null, 'phi')).toBeNull();
    expect(maskValue(undefined, 'phi')).toBeUndefined();
    expect(maskValue([true, null], 'confidential')).toEqual([true, null]);
  });

  it('masks a Date as its ISO string', () => {
    expect(maskValue(new Date('2024-01-02T03:04:05.678Z'), 'phi')).toBe('20********************8Z');
  });

  it('does not modify its input', () => {
    const input = { a: 'secret value', b: ['x1', { c: 'deep' }] };
    const copy = structuredClone(input);
    maskValue(input, 'phi');
    expect(input).toEqual(copy);
  });

  it('keeps a __proto__ key as an own property and does not touch prototypes', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "yes"}}') as object;
    const masked = maskValue(input, 'phi') as Record<string, unknown>;
    expect(Object.getOwnPropertyNames(masked)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(masked)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('replaces cycles with [Circular] but masks shared (non-cyclic) references twice', () => {
    const shared = { s: 'abcdef' };
    const root: Record<string, unknown> = { a: shared, b: shared };
    root.self = root;
    expect(maskValue(root, 'phi')).toEqual({ a: { s: 'ab**ef' }, b: { s: 'ab**ef' }, self: '[Circular]' });
  });
});

describe('properties', () => {
  const anyString = fc.string({ unit: 'binary', maxLength: 60 });

  it.each(['phi', 'restricted'] as const)('%s never changes a string’s length (code points)', (classification: DataClassification) => {
    fc.assert(
      fc.property(anyString, (s) => {
        expect(cpLength(maskString(s, classification))).toBe(cpLength(s));
      }),
      { numRuns: 500 },
    );
  });

  it('phi keeps at most 4 original characters and none when ≤ 4', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const out = Array.from(maskString(s, 'phi'));
        const kept = out.filter((c) => c !== '*').length;
        expect(kept).toBeLessThanOrEqual(cpLength(s) <= 4 ? 0 : 4);
      }),
      { numRuns: 500 },
    );
  });

  it('restricted keeps whitespace in place', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'bc', 'def', ' ', '\t', '\n', 'é', '😀'), { maxLength: 30 }), (parts) => {
        const s = parts.join('');
        const input = Array.from(s);
        const out = Array.from(maskString(s, 'restricted'));
        input.forEach((c, i) => {
          if (/\s/u.test(c)) expect(out[i]).toBe(c);
        });
      }),
    );
  });

  it('confidential is ⌊0.3n⌋ + 3 + ⌊0.1n⌋ long', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const n = cpLength(s);
        expect(cpLength(maskString(s, 'confidential'))).toBe(Math.floor(n * 0.3) + 3 + Math.floor(n * 0.1));
      }),
      { numRuns: 500 },
    );
  });

  it('maskValue under phi keeps the shape of any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const masked = maskValue(value, 'phi');
        const shape = (v: unknown): unknown =>
          Array.isArray(v)
            ? v.map(shape)
            : v !== null && typeof v === 'object'
              ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shape(x)]))
              : typeof v === 'number' || typeof v === 'string'
                ? 'leaf'
                : v;
        expect(shape(masked)).toEqual(shape(value));
      }),
      { numRuns: 200 },
    );
  });
});
