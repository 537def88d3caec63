/**
 * The offline sweep against a coordination store that lost its state between the store check
 * and the presence read (Redis restarted empty: a read queued while it was down runs against the
 * empty one). Presence read then is no evidence of silence: `steady` (the store watch, checked
 * again after the read) stops the sweep; once the store is steady again, only agents that are
 * really silent go offline. Real Redis (own key prefix; only its keys deleted).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createCoordination, StoreWatch, type Coordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { agentService, insertAgent } from '../../test/helpers/agents.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';

describe.skipIf(!redisUrl).each(engines())('offline sweep after the coordination store was emptied, on $name', (engine) => {
  let tdb: TestDb;
  let coord: Coordination;
  const prefix = `sweep-${randomUUID()}:`;
  beforeAll(async () => {
    tdb = await engine.open();
    coord = await createCoordination({ redisUrl, keyPrefix: prefix });
  });
  afterAll(async () => {
    await coord.close();
    await tdb?.dispose();
  });

  it('marks nothing offline from presence read out of an emptied store, and only the silent agent once the store is steady', async () => {
    const agents = agentService(tdb.db, coord);
    const resets: string[] = [];
    const watch = new StoreWatch(coord, { intervalMs: 60_000, onReset: (why) => { resets.push(why); } });
    await watch.start();
    const alive = `alive-${randomUUID()}`;
    const silent = `silent-${randomUUID()}`;
    for (const id of [alive, silent]) {
      await insertAgent(tdb.db, id, ['cap'], 1);
      await agents.heartbeat(id, {}, 'ws');
    }
    expect(await watch.check()).toBe(true); // the sweep's check before it reads presence

    // Redis restarts empty right then: every presence record (and the epoch) gone.
    const raw = new Redis(redisUrl);
    try {
      await raw.del(...(await raw.keys(`${prefix}*`)));
    } finally {
      raw.disconnect();
    }
    expect(await agents.sweepOffline(Date.now(), () => watch.check())).toEqual([]);
    expect(resets).toEqual(['lost']);
    for (const id of [alive, silent]) expect((await agents.get(id)).status).toBe('active');

    // Heartbeats restore presence; the agent that stays silent is the only one marked.
    await agents.heartbeat(alive, {}, 'ws');
    expect(await agents.sweepOffline(Date.now(), () => watch.check())).toEqual([silent]);
    expect((await agents.get(alive)).status).toBe('active');
    expect((await agents.get(silent)).status).toBe('offline');
    await watch.stop();
  });
});
