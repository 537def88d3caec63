/**
 * Accepts and results for the same tasks arriving at once (an agent acks a delivery and sends
 * its result immediately): the batched statements lock overlapping rows and must queue, not
 * deadlock. Every result is recorded exactly once. Two engines (processes) dispatching the same
 * queue at once lease every task exactly once.
 *
 * On PostgreSQL the race is also forced: a row in the middle of the batch is held by another
 * transaction until both batches wait, so the accepts (sent in ascending order) and the results
 * (descending) have each locked everything they could before either goes on. Locked in the order
 * they were sent, they would deadlock; locked in one order, one waits for the other.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, isAppError, jsonCodec } from '../core/index.ts';
import { engines, lockWaiters, pgUrlWithSchema, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';
import type { Db } from '../store/index.ts';

const admin: Principal = { type: 'user', id: 'conc-admin', role: 'admin', name: 'conc' };

/** A task service and an assignment engine over `db`, with one agent holding `cap`; `lease(n)` creates n tasks and leases them all to it. */
async function leasingAgent(db: Db, agent: string, cap: string) {
  const repo = new TaskRepository(jsonCodec);
  const bus = new EventBus();
  const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
  const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
  await insertAgent(db, agent, [cap], 300);
  const lease = async (n: number) => {
    const delivered: DeliveredTask[] = [];
    const created = await tasks.createMany(Array.from({ length: n }, (_, i) => ({ task_type: cap, required_capabilities: [cap], parameters: { i } })), admin);
    await eng.addSlot({ agent_id: agent, capabilities: new Set([cap]), max: 300, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await eng.settle();
    eng.removeSlot(agent);
    return { created, delivered };
  };
  /** Accepts `accepting` and sends results for `resulting`, all at once; every outcome, settled. */
  const race = (accepting: DeliveredTask[], resulting: DeliveredTask[]) => ({
    accepts: accepting.map((d) => tasks.accept(d.task_id, agent, d.attempt).then(() => 'ok', (e: unknown) => (isAppError(e) ? e.code : String(e)))),
    results: resulting.map((d) => tasks.complete(d.task_id, agent, d.attempt, { i: (d.parameters as { i: number }).i }).then((r) => (r.duplicate ? 'duplicate' : r.status), (e: unknown) => String(e))),
  });
  return { tasks, eng, lease, race };
}

async function completedEntries(db: Db, ids: string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_events WHERE to_status = 'completed' AND task_id = ANY($1::uuid[])`, [ids]);
  return rows[0]!.n;
}

describe.each(engines())('concurrent accepts and results on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('records every result once when accepts and results for the same tasks race in opposite orders', async () => {
    const { eng, lease, race } = await leasingAgent(tdb.db, 'conc-agent', 'conc');
    try {
      for (let round = 0; round < 3; round++) {
        const { created, delivered } = await lease(200);
        expect(delivered).toHaveLength(200);
        const { accepts, results } = race(delivered, [...delivered].reverse());
        const [acceptOutcomes, completed] = await Promise.all([Promise.all(accepts), Promise.all(results)]);
        // An accept that lost the race to its result is refused as a late transition, nothing else.
        expect(acceptOutcomes.filter((o) => o !== 'ok' && o !== 'INVALID_STATUS_TRANSITION')).toEqual([]);
        expect(completed).toEqual(delivered.map(() => 'completed'));
        expect(await completedEntries(tdb.db, created.map((c) => c.task_id))).toBe(200);
      }
    } finally {
      eng.stop();
    }
  });

  it('leases every task once when two engines dispatch the same queue at the same moment', async () => {
    const db = tdb.db;
    const repo = new TaskRepository(jsonCodec);
    const tasks = new TaskService(db, repo, noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const engines = [new AssignmentEngine(db, repo, new EventBus(), { defaultStrategy: 'capability_match', batchSize: 50 }), new AssignmentEngine(db, repo, new EventBus(), { defaultStrategy: 'capability_match', batchSize: 50 })];
    const got: DeliveredTask[][] = [[], []];
    try {
      const created = await tasks.createMany(Array.from({ length: 300 }, (_, i) => ({ task_type: 'race', required_capabilities: ['race'], parameters: { i } })), admin);
      for (let i = 0; i < engines.length; i++) {
        const agent = `race-agent-${i}`;
        await insertAgent(db, agent, ['race'], 300);
      }
      // Both slots added together: both engines start rounds over the same 300 pending tasks.
      await Promise.all(engines.map((eng, i) => eng.addSlot({ agent_id: `race-agent-${i}`, capabilities: new Set(['race']), max: 300, score: 0, builtin: false, available: true, deliver: (t) => got[i]!.push(t) })));
      await Promise.all(engines.map((eng) => eng.settle()));
      const all = [...got[0]!, ...got[1]!].map((t) => t.task_id);
      expect(all).toHaveLength(300);
      expect(new Set(all).size).toBe(300);
      expect(new Set(all)).toEqual(new Set(created.map((c) => c.task_id)));
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_events WHERE to_status = 'assigned' AND task_id = ANY($1::uuid[])`, [all]);
      expect(rows[0]!.n).toBe(300);
      expect(engines[0]!.loadOf('race-agent-0') + engines[1]!.loadOf('race-agent-1')).toBe(300);
    } finally {
      for (const eng of engines) eng.stop();
    }
  });
});

for (const engine of engines().filter((e) => e.name === 'postgres')) {
  describe('accepts and results in opposite orders, held at the same row, on postgres', () => {
    let tdb: TestDb;
    beforeAll(async () => { tdb = await engine.open(); });
    afterAll(async () => tdb?.dispose());

    it('queues the two batches behind each other instead of deadlocking, and records every result once', async () => {
      const { eng, lease, race } = await leasingAgent(tdb.db, 'held-agent', 'held');
      const { delivered } = await lease(41);
      eng.stop();
      expect(delivered).toHaveLength(41);
      const ascending = [...delivered].sort((a, b) => (a.task_id < b.task_id ? -1 : 1));
      const [blocker, observer] = [0, 1].map(() => new pg.Client({ connectionString: pgUrlWithSchema(tdb.url!, tdb.schema!) }));
      await Promise.all([blocker!.connect(), observer!.connect()]);
      try {
        await blocker!.query('BEGIN');
        await blocker!.query('SELECT 1 FROM tasks WHERE task_id = $1 FOR UPDATE', [ascending[20]!.task_id]);
        const { accepts, results } = race(ascending, [...ascending].reverse());
        await lockWaiters(observer!, `${tdb.schema!}.tasks`, 2);
        await blocker!.query('COMMIT');
        const [acceptOutcomes, completed] = await Promise.all([Promise.all(accepts), Promise.all(results)]);
        expect(acceptOutcomes.filter((o) => o !== 'ok' && o !== 'INVALID_STATUS_TRANSITION')).toEqual([]);
        expect(completed).toEqual(ascending.map(() => 'completed'));
        expect(await completedEntries(tdb.db, ascending.map((d) => d.task_id))).toBe(41);
      } finally {
        await Promise.all([blocker!.end(), observer!.end()]);
      }
    });
  });
}
