/**
 * FheAggregator runs SEAL in a worker thread: answers come from the worker, errors keep their
 * code across the thread boundary, and a stopped worker fails its pending calls and is replaced
 * on the next call.
 */
import { isMainThread } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { FheAggregator } from './fhe-aggregator.ts';

describe('FheAggregator (worker thread)', () => {
  const fhe = new FheAggregator({ maxCiphertexts: 2 });
  afterAll(async () => {
    await fhe.close();
  });

  it('answers from the worker, keeps AppError codes and fields across the thread, and restarts after a stop', async () => {
    expect(isMainThread).toBe(true);
    expect((await fhe.params()).max_ciphertexts).toBe(2);
    await expect(fhe.aggregate('sum', ['eA==', 'eA==', 'eA=='])).rejects.toMatchObject({ code: 'INVALID_PARAMETERS', status: 400, details: { field_errors: [{ field: 'ciphertexts' }] } });
    await expect(fhe.aggregate('sum', ['bm90IGEgY2lwaGVydGV4dA=='])).rejects.toMatchObject({ code: 'INVALID_PARAMETERS', details: { field_errors: [{ field: 'ciphertexts[0]' }] } });

    const pending = fhe.params();
    await fhe.close();
    await expect(pending).rejects.toMatchObject({ code: 'INTERNAL_ERROR' });
    expect((await fhe.params()).scheme).toBe('ckks'); // a new worker
  });
});
