/**
 * A long-poll claim (POST /tasks/claim) hands back every task it leased. Adding the claim's slot
 * triggers a dispatch round of its own; when that round picks the task first, the claim's round
 * finds nothing — and a claim that ended then (no wait) returned empty while its task was
 * leased to the agent anyway, not to be seen again until the lease expired.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'claim-admin', role: 'admin', name: 'claim' };

describe.each(engines())('long-poll claims on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('return the task they leased, also when the round their slot triggered took it (no wait)', async () => {
    const db = tdb.db;
    const repo = new TaskRepository(jsonCodec);
    const tasks = new TaskService(db, repo, noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    // The claim's own queue read is held back so that the round its slot triggered reads and
    // picks first — the race, forced.
    let holdNextRead = false;
    const held = new Proxy(db, {
      get(target, prop) {
        if (prop === 'query') {
          return async (sql: string, params?: unknown[]) => {
            if (holdNextRead && sql.includes('cut AS MATERIALIZED')) {
              holdNextRead = false;
              await new Promise((r) => setTimeout(r, 50));
            }
            return target.query(sql, params);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const eng = new AssignmentEngine(held, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    await insertAgent(db, 'claimer', ['claimcap'], 1);
    try {
      for (let i = 0; i < 40; i++) {
        const [t] = await tasks.createMany([{ task_type: 'c', required_capabilities: ['claimcap'], parameters: { i } }], admin);
        holdNextRead = i % 2 === 0; // every other claim: the race; the others: the usual order
        const got = await eng.claim({ agent_id: 'claimer', capabilities: new Set(['claimcap']), max: 1, score: 0, builtin: false, available: true }, 1, 0);
        expect(got.map((g) => g.task_id), `claim ${i}`).toEqual([t!.task_id]);
        await tasks.complete(t!.task_id, 'claimer', got[0]!.attempt, { ok: true });
      }
    } finally {
      eng.stop();
    }
  });
});
