/**
 * The heartbeat's cached agent state (AgentService.heartbeatState) against a status change made
 * while a heartbeat's read was under way: the read may have seen the row before the change, so
 * it must not be cached — else a heartbeat racing the offline sweep keeps `active` for the
 * cache's lifetime and does not restore the row the sweep marked offline.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Db } from '../store/index.ts';
import { engines, hookedDb, storeAndCoordination } from '../../test/helpers/stores.ts';
import { agentService, insertAgent } from '../../test/helpers/agents.ts';

/** The database, holding back the result of the next read of an agent row until `release()`. */
function heldReadDb(db: Db) {
  let armed = false;
  let release: () => void = () => {};
  let held: Promise<void> = Promise.resolve();
  let reached: () => void = () => {};
  let readDone: Promise<void> = Promise.resolve();
  const wrapped = hookedDb(db, {
    after: async (sql) => {
      if (armed && sql.startsWith('SELECT') && sql.includes('FROM agents WHERE agent_id')) {
        armed = false;
        reached();
        await held;
      }
    },
  });
  return {
    db: wrapped,
    /** The next agent read runs now and answers after `release()`; resolves once it has run. */
    holdNextRead: () => {
      armed = true;
      held = new Promise<void>((r) => { release = r; });
      readDone = new Promise<void>((r) => { reached = r; });
      return readDone;
    },
    release: () => release(),
  };
}

describe.each(engines())('heartbeat state cache on $name', (engine) => {
  const ctx = storeAndCoordination(engine);

  it('does not keep a state read before a concurrent status change: the next heartbeat restores an agent marked offline', async () => {
    const { tdb, coord } = ctx;
    const held = heldReadDb(tdb.db);
    const agents = agentService(held.db, coord);
    const agentId = `hb-${randomUUID()}`;
    await insertAgent(tdb.db, agentId, ['cap'], 2);
    await agents.setStatus(agentId, 'active');

    // A heartbeat reads the row (active); before its answer arrives the sweep marks the agent offline.
    const read = held.holdNextRead();
    const beat = agents.heartbeat(agentId, {}, 'ws');
    await read;
    await agents.setStatus(agentId, 'offline');
    held.release();
    expect((await beat).agent_status).toBe('active'); // what that read saw

    // The agent is alive: its next heartbeat (well within the cache's 5 s) brings the row back.
    const next = await agents.heartbeat(agentId, {}, 'ws');
    expect(next.agent_status).toBe('active');
    expect((await agents.get(agentId)).status).toBe('active');
  });
});
