import { describe, expect, it } from 'vitest';
import { DATA_CLASSIFICATIONS, DEFAULT_CLASSIFICATION, isDataClassification, requiresEncryption } from './classification.ts';

describe('classification', () => {
  it('lists the five SPEC §9 levels, least sensitive first, defaulting to phi', () => {
    expect(DATA_CLASSIFICATIONS).toEqual(['public', 'internal', 'confidential', 'restricted', 'phi']);
    expect(DEFAULT_CLASSIFICATION).toBe('phi');
  });

  it('only phi and restricted are encrypted at rest', () => {
    expect(DATA_CLASSIFICATIONS.filter(requiresEncryption)).toEqual(['restricted', 'phi']);
  });

  it.each([
    ['phi', true],
    ['public', true],
    ['PHI', false],
    ['secret', false],
    [null, false],
    [1, false],
  ])('isDataClassification(%j) → %s', (value, expected) => {
    expect(isDataClassification(value)).toBe(expected);
  });
});
