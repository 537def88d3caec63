/**
 * StoreWatch notices a coordination store that lost its state (flush, restart empty) or was
 * unreachable, on the in-process adapter and on Redis (own key prefix; only its keys deleted).
 * The outage path (Redis stopped and started) is exercised end to end in test/e2e/multi-process.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Coordination } from './coordination.ts';
import { createCoordination, MemoryCoordination, StoreWatch } from './index.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';

describe.each([
  { name: 'memory', redis: false },
  { name: 'redis', redis: true },
])('StoreWatch on $name', ({ redis }) => {
  const open: Coordination[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  it.skipIf(redis && !redisUrl)('reports nothing while the store keeps its state, and "lost" once after it is emptied', async () => {
    const prefix = `sw-${randomUUID()}:`;
    const coord = redis ? await createCoordination({ redisUrl, keyPrefix: prefix }) : new MemoryCoordination();
    open.push(coord);
    const resets: string[] = [];
    const watch = new StoreWatch(coord, { intervalMs: 60_000, onReset: (why) => { resets.push(why); } });
    await watch.start();
    expect(await watch.check()).toBe(true); // the store as it was: what was read from it stands
    expect(await watch.check()).toBe(true);
    expect(resets).toEqual([]);
    // A flush of this deployment's keys (what a Redis restart without persistence amounts to).
    if (redis) {
      const raw = new Redis(redisUrl);
      const keys = await raw.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThan(0);
      await raw.del(...keys);
      raw.disconnect();
    } else {
      await coord.del('coordination:epoch');
    }
    expect(await watch.check()).toBe(false); // read since the previous check: maybe from the emptied store
    expect(resets).toEqual(['lost']);
    expect(await watch.check()).toBe(true);
    expect(resets).toEqual(['lost']);
    // A second process sharing the store adopts the same epoch and sees no reset.
    const other = new StoreWatch(coord, { intervalMs: 60_000, onReset: (why) => { resets.push(`other:${why}`); } });
    await other.start();
    await other.check();
    expect(resets).toEqual(['lost']);
    await Promise.all([watch.stop(), other.stop()]);
  });
});
