/**
 * The batched statements that move tasks (leases, accepts, results) reach their rows through the
 * primary key whatever the table holds: a plan that scans the whole table would make every batch
 * cost as much as the table is large. Checked on each engine's own plan (EXPLAIN of the
 * statements as sent, with their parameters) over a table many times larger than the batch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { AgentRepository } from '../agents/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'plan-admin', role: 'admin', name: 'plan' };

/** Relations a plan reads with a sequential scan. */
function seqScans(node: Record<string, unknown>): string[] {
  const own = node['Node Type'] === 'Seq Scan' ? [String(node['Relation Name'])] : [];
  return [...own, ...((node.Plans as Array<Record<string, unknown>> | undefined) ?? []).flatMap(seqScans)];
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
    await new AgentRepository().insert(tdb.db, { agent_id: 'plan-agent', name: 'plan', type: 'general', capabilities: ['plan'], version: '1.0.0', endpoint_url: null, health_check_url: null, max_concurrent_tasks: 100, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x' });
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
      const { rows } = await tdb.db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${s.sql}`, s.params);
      const raw = rows[0]!['QUERY PLAN'];
      const plan = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{ Plan: Record<string, unknown> }>;
      expect(seqScans(plan[0]!.Plan)).not.toContain('tasks');
    }
  });
});
