import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { inLockOrder } from './task-batches.ts';

describe('inLockOrder', () => {
  it('orders by task id as uuid bytes (case-insensitive) and keeps the first mention of each task', () => {
    const items = [
      { id: 'b0000000-0000-4000-8000-000000000000', n: 1 },
      { id: 'A0000000-0000-4000-8000-000000000000', n: 2 },
      { id: '90000000-0000-4000-8000-000000000000', n: 3 },
      { id: 'a0000000-0000-4000-8000-000000000000', n: 4 },
    ];
    expect(inLockOrder(items, (x) => x.id).map((x) => x.n)).toEqual([3, 2, 1]);
  });

  it('is a sorted permutation of the distinct ids whatever the input order', () => {
    fc.assert(fc.property(fc.array(fc.uuid(), { maxLength: 50 }), (ids) => {
      const out = inLockOrder(ids, (x) => x);
      expect(new Set(out)).toEqual(new Set(ids));
      expect(out).toHaveLength(new Set(ids).size);
      expect(out).toEqual([...out].sort());
    }));
  });
});
