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
  it('runs each item of a batch alone when the batch fails with an error it isolates', async () => {
    const batches: number[][] = [];
    const bad = Object.assign(new Error('value out of range'), { code: '22003' });
    const b = new MicroBatcher<number, number>(async (xs) => { batches.push(xs); if (xs.includes(2)) throw bad; return xs.map((x) => x + 100); }, { maxSize: 10, maxInFlight: 1, isolate: (e) => e === bad });
    const out = await Promise.allSettled([1, 2, 3].map((x) => b.submit(x)));
    expect(out.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([101, 'value out of range', 103]);
    expect(batches).toEqual([[1, 2, 3], [1], [2], [3]]);
  });
  it('rejects the whole batch at once when the error is not one it isolates', async () => {
    let runs = 0;
    const b = new MicroBatcher<number, number>(async () => { runs++; throw new Error('db down'); }, { maxSize: 10, maxInFlight: 1, isolate: () => false });
    const out = await Promise.allSettled([1, 2, 3].map((x) => b.submit(x)));
    expect(out.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(runs).toBe(1);
  });
});
