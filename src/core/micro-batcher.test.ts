import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './micro-batcher.ts';

describe('MicroBatcher', () => {
  it('groups concurrent submissions and answers each caller with its own outcome', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher<number, number>(async (xs) => { batches.push(xs); return xs.map((x) => x * 10); }, { maxSize: 3, maxInFlight: 1 });
    const out = await Promise.all([1, 2, 3, 4, 5].map((x) => b.submit(x)));
    expect(out).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([[1, 2, 3], [4, 5]]);
  });
  it('rejects every caller of a failed batch and keeps working', async () => {
    let fail = true;
    const b = new MicroBatcher<number, number>(async (xs) => { if (fail) throw new Error('db down'); return xs; }, { maxSize: 10, maxInFlight: 2 });
    await expect(Promise.all([b.submit(1), b.submit(2)])).rejects.toThrow('db down');
    fail = false;
    expect(await b.submit(3)).toBe(3);
  });
});
