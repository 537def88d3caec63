/**
 * CoalescedLimiter against the coordination layer's real limiters (in-process, and Redis when
 * reachable): a key's consumes of one turn make one call to the limiter, and each request gets
 * the answer the same consumes made one after another would have had.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { CoalescedLimiter } from './coalesced-limiter.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const adapters = [{ name: 'in-process coordination', url: '' }, ...(redisUrl ? [{ name: 'Redis coordination', url: redisUrl }] : [])];

/** The limiter with its calls counted (the limiter itself is the real one). */
function counted(limiter: RateLimiterAbstract): { limiter: RateLimiterAbstract; calls: Array<[string, number]> } {
  const calls: Array<[string, number]> = [];
  const consume = limiter.consume.bind(limiter);
  limiter.consume = (key, points) => {
    calls.push([String(key), Number(points)]);
    return consume(key, points);
  };
  return { limiter, calls };
}

describe.each(adapters)('CoalescedLimiter on $name', ({ url }) => {
  let coord: Coordination | undefined;
  afterEach(async () => coord?.close());

  it('answers a turn of consumes with one call: allowed in order while within the limit, then refused', async () => {
    coord = await createCoordination({ redisUrl: url, keyPrefix: `coalesce-${randomUUID()}:` });
    const { limiter, calls } = counted(coord.createRateLimiter({ keyPrefix: 'rl:test', points: 7, durationSec: 60 }));
    const coalesced = new CoalescedLimiter(limiter, 7);
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => coalesced.consume('user:a', 1)));
    expect(calls).toEqual([['user:a', 10]]);
    expect(outcomes.map((o) => [o.allowed, o.remaining])).toEqual([
      [true, 6], [true, 5], [true, 4], [true, 3], [true, 2], [true, 1], [true, 0], [false, 0], [false, 0], [false, 0],
    ]);
    for (const o of outcomes) expect(o.msBeforeNext).toBeGreaterThan(50_000);
    // The next turn continues from the total (refused points counted, as rate-limiter-flexible does).
    expect(await coalesced.consume('user:a', 1)).toMatchObject({ allowed: false, remaining: 0 });
    expect(calls).toEqual([['user:a', 10], ['user:a', 1]]);
  });

  it('sums costs per key: each request sees the points consumed up to and including its own', async () => {
    coord = await createCoordination({ redisUrl: url, keyPrefix: `coalesce-${randomUUID()}:` });
    const { limiter, calls } = counted(coord.createRateLimiter({ keyPrefix: 'rl:test', points: 8, durationSec: 60 }));
    const coalesced = new CoalescedLimiter(limiter, 8);
    const [a1, b1, a2, a3, b2] = await Promise.all([
      coalesced.consume('user:a', 3), coalesced.consume('user:b', 8), coalesced.consume('user:a', 5), coalesced.consume('user:a', 1), coalesced.consume('user:b', 1),
    ]);
    expect(calls.sort()).toEqual([['user:a', 9], ['user:b', 9]]);
    expect([a1, a2, a3].map((o) => [o.allowed, o.remaining])).toEqual([[true, 5], [true, 0], [false, 0]]);
    expect([b1, b2].map((o) => [o.allowed, o.remaining])).toEqual([[true, 0], [false, 0]]);
  });

  it('claims allowances for a high limit: most requests need no call, and the limit holds across processes', async () => {
    coord = await createCoordination({ redisUrl: url, keyPrefix: `coalesce-${randomUUID()}:` });
    // Two processes' limiters on one store (chunk: 1 % of 1,000 = 10 points).
    const la = coord.createRateLimiter({ keyPrefix: 'rl:test', points: 1000, durationSec: 60 });
    const lb = coord.createRateLimiter({ keyPrefix: 'rl:test', points: 1000, durationSec: 60 });
    const a = counted(la);
    const b = lb === la ? { limiter: lb, calls: [] } : counted(lb); // in-process: one limiter, counted once
    const onA = new CoalescedLimiter(a.limiter, 1000);
    const onB = new CoalescedLimiter(b.limiter, 1000);
    const first = await onA.consume('svc:x', 1);
    expect(a.calls).toEqual([['svc:x', 11]]); // its own point and the allowance
    expect(first).toMatchObject({ allowed: true, remaining: 999 });
    const second = await onA.consume('svc:x', 1);
    expect(a.calls).toHaveLength(1); // from the allowance
    expect(second).toMatchObject({ allowed: true, remaining: 998 });
    let allowed = 2;
    for (let i = 0; i < 1200; i++) if ((await (i % 2 ? onA : onB).consume('svc:x', 1)).allowed) allowed++;
    // Never more than the limit; at most one allowance per process lost to the other.
    expect(allowed).toBeLessThanOrEqual(1000);
    expect(allowed).toBeGreaterThanOrEqual(1000 - 2 * 10);
    expect(a.calls.length + b.calls.length).toBeLessThan(400);
    // Past the limit every request is refused, and claims no allowance any more.
    expect((await onA.consume('svc:x', 1)).allowed).toBe(false);
    expect((await onB.consume('svc:x', 1)).allowed).toBe(false);
    expect(a.calls.at(-1)).toEqual(['svc:x', 1]);
  });

  it('drops an allowance when its window ends', async () => {
    coord = await createCoordination({ redisUrl: url, keyPrefix: `coalesce-${randomUUID()}:` });
    const { limiter, calls } = counted(coord.createRateLimiter({ keyPrefix: 'rl:test', points: 1000, durationSec: 1 }));
    const coalesced = new CoalescedLimiter(limiter, 1000);
    expect((await coalesced.consume('svc:y', 1)).allowed).toBe(true);
    expect((await coalesced.consume('svc:y', 1)).allowed).toBe(true);
    expect(calls).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await coalesced.consume('svc:y', 1)).toMatchObject({ allowed: true, remaining: 999 });
    expect(calls).toEqual([['svc:y', 11], ['svc:y', 11]]);
  });
});

describe.skipIf(!redisUrl)('CoalescedLimiter when Redis cannot answer', () => {
  it('rejects every request of the group with the limiter\'s error (not a rate-limit answer)', async () => {
    const coord = await createCoordination({ redisUrl, keyPrefix: `coalesce-${randomUUID()}:` });
    const coalesced = new CoalescedLimiter(coord.createRateLimiter({ keyPrefix: 'rl:test', points: 8, durationSec: 60 }), 8);
    expect(await coalesced.consume('user:c', 1)).toMatchObject({ allowed: true, remaining: 7 });
    await coord.close();
    const outcomes = await Promise.allSettled([coalesced.consume('user:c', 1), coalesced.consume('user:c', 1)]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toBeInstanceOf(Error);
  });
});
