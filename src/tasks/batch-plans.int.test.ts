/**
 * The batched statements that move tasks (leases, accepts, results) reach their rows through the
 * primary key whatever the table holds: a plan that scans the whole table would make every batch
 * cost as much as the table is large. Checked on each engine's own plan (EXPLAIN of the
 * statements as sent, with their parameters) over a table many times larger than the batch.
 * And the row each of them locks is looked up by primary key in a generic plan made while the
 * table was nearly empty, as a prepared statement's is when the server starts on a new database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { planOf, type PlanNode } from '../../test/helpers/plans.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'plan-admin', role: 'admin', name: 'plan' };

/** Indexes the scans below a LockRows node use: the lookups whose rows a statement locks. */
function lockedLookupIndexes(node: PlanNode, locked = false): string[] {
  const under = locked || node['Node Type'] === 'LockRows';
  const own = under && typeof node['Index Name'] === 'string' ? [node['Index Name']] : [];
  return [...own, ...(node.Plans ?? []).flatMap((c) => lockedLookupIndexes(c, under))];
}

/** Relations a plan reads with a sequential scan. */
function seqScans(node: PlanNode): string[] {
  const own = node['Node Type'] === 'Seq Scan' ? [String(node['Relation Name'])] : [];
  return [...own, ...(node.Plans ?? []).flatMap(seqScans)];
}

describe.each(engines())('batched task statements on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('lease, accept and record results through the primary key, not a scan of the table', async () => {
    // The statements that update tasks from a locked set (`FROM cur`), as sent.
    const sent: Array<{ sql: string; params: unknown[] | undefined }> = [];
    const db = observedDb(tdb.db, (sql, params) => { if (/UPDATE tasks t SET[\s\S]*FROM cur WHERE/.test(sql)) sent.push({ sql, params }); });
    const repo = new TaskRepository(jsonCodec);
    const bus = new EventBus();
    const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
    await insertAgent(tdb.db, 'plan-agent', ['plan'], 100);
    for (let i = 0; i < 5; i++) await tasks.createMany(Array.from({ length: 1000 }, () => ({ task_type: 'other', required_capabilities: ['other'] })), admin);
    await tasks.createMany(Array.from({ length: 100 }, () => ({ task_type: 'plan', required_capabilities: ['plan'] })), admin);
    await tdb.db.query('ANALYZE tasks');
    const delivered: DeliveredTask[] = [];
    await eng.addSlot({ agent_id: 'plan-agent', capabilities: new Set(['plan']), max: 100, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await eng.settle();
    eng.stop();
    expect(delivered).toHaveLength(100);
    await Promise.all(delivered.map((d) => tasks.accept(d.task_id, 'plan-agent', d.attempt)));
    await Promise.all(delivered.map((d) => tasks.complete(d.task_id, 'plan-agent', d.attempt, { ok: true })));
    expect(sent.map((s) => /SET status = '(\w+)'/.exec(s.sql)?.[1])).toEqual(['assigned', 'running', 'completed']);
    for (const s of sent) {
      expect(seqScans(await planOf(tdb.db, 'EXPLAIN (FORMAT JSON)', s.sql, s.params))).not.toContain('tasks');
    }
  });

  it('look the rows they lock up by primary key, even in a generic plan made on a nearly empty table', async () => {
    const plans = await engine.open();
    try {
      const sent: Array<{ sql: string; params: unknown[] | undefined }> = [];
      const db = observedDb(plans.db, (sql, params) => { if (sql.includes('FOR UPDATE')) sent.push({ sql, params }); });
      const repo = new TaskRepository(jsonCodec);
      const bus = new EventBus();
      const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
      const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
      await insertAgent(plans.db, 'gp-agent', ['gp'], 10);
      const [a, b] = await tasks.createMany([{ task_type: 'gp', required_capabilities: ['gp'] }, { task_type: 'gp', required_capabilities: ['gp'] }], admin);
      const delivered: DeliveredTask[] = [];
      await eng.addSlot({ agent_id: 'gp-agent', capabilities: new Set(['gp']), max: 10, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
      await eng.settle();
      eng.stop();
      expect(delivered.map((d) => d.task_id).sort()).toEqual([a!.task_id, b!.task_id].sort());
      await tasks.accept(a!.task_id, 'gp-agent', 1);
      await tasks.progress(b!.task_id, 'gp-agent', 1, 0.5);
      await tasks.complete(a!.task_id, 'gp-agent', 1, { ok: true });
      const kinds = ['lease', 'accept', 'progress', 'result'];
      const statements = kinds.map((k, i) => {
        const s = sent.find((x) => [/SET status = 'assigned'/, /SET status = 'running', started_at = now\(\)/, /SET progress = \$4/, /SET status = 'completed'/][i]!.test(x.sql));
        if (!s) throw new Error(`no ${k} statement was sent`);
        return s;
      });
      for (const [i, s] of statements.entries()) {
        const count = Math.max(...[...s.sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
        const indexes = await plans.db.transaction(async (q) => {
          await q.query('SET LOCAL plan_cache_mode = force_generic_plan');
          await q.query(`PREPARE gp_lookup AS ${s.sql}`);
          const plan = await planOf(q, 'EXPLAIN (FORMAT JSON)', `EXECUTE gp_lookup(${Array(count).fill('NULL').join(', ')})`);
          await q.query('DEALLOCATE gp_lookup');
          return lockedLookupIndexes(plan);
        });
        // By primary key; a result also locks the tasks waiting on it, found through the dependency index.
        expect({ statement: kinds[i], pkey: indexes.includes('tasks_pkey'), others: indexes.filter((x) => x !== 'tasks_pkey' && x !== 'tasks_dependencies') })
          .toEqual({ statement: kinds[i], pkey: true, others: [] });
      }
    } finally {
      await plans.dispose();
    }
  });
});
