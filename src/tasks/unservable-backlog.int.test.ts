/**
 * A backlog that no connected agent can serve (its agents are down) is not read by the work
 * that other agents keep doing: a create that can run at once (assignment at insert checks that
 * nothing the agent covers is waiting) and a dispatch round (the queue head) read the capability
 * sets and levels waiting, not the waiting tasks. Checked on each engine's own plan (EXPLAIN
 * ANALYZE of the statements as sent) by the rows read from `tasks`.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { planOf, type PlanNode } from '../../test/helpers/plans.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import { readQueueHead } from './queue-head.ts';
import type { Principal } from '../auth/index.ts';
import type { Queryable } from '../store/index.ts';

const admin: Principal = { type: 'user', id: 'backlog-admin', role: 'admin', name: 'backlog' };
const BACKLOG = 3000;

/** Rows the plan's nodes on `tasks` produced or filtered out, over all their loops. */
function tasksRowsRead(node: PlanNode): number {
  const own = node['Relation Name'] === 'tasks'
    ? Number(node['Actual Rows'] ?? 0) * Number(node['Actual Loops'] ?? 1) + Number(node['Rows Removed by Filter'] ?? 0) + Number(node['Rows Removed by Index Recheck'] ?? 0)
    : 0;
  return own + (node.Plans ?? []).reduce((n, c) => n + tasksRowsRead(c), 0);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The parameters with every id replaced by a new one (the same new one for the same id), so a statement that inserted can run again. */
function freshIds(params: unknown[] | undefined): unknown[] | undefined {
  const ids = new Map<string, string>();
  const swap = (v: unknown): unknown => {
    if (typeof v === 'string' && UUID.test(v)) return ids.get(v) ?? ids.set(v, randomUUID()).get(v);
    return Array.isArray(v) ? v.map(swap) : v;
  };
  return params?.map(swap);
}

/** Runs EXPLAIN ANALYZE of a statement (with new ids) in a transaction rolled back afterwards (it may write). */
async function rowsRead(tdb: TestDb, sql: string, sentParams: unknown[] | undefined): Promise<number> {
  const params = freshIds(sentParams);
  let read = -1;
  const rollback = new Error('roll back');
  await tdb.db.transaction(async (q: Queryable) => {
    read = tasksRowsRead(await planOf(q, 'EXPLAIN (ANALYZE, FORMAT JSON)', sql, params));
    throw rollback;
  }).catch((e: unknown) => { if (e !== rollback) throw e; });
  return read;
}

describe.each(engines())('a backlog nobody here serves on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('is not read by creates that run at once nor by dispatch rounds', async () => {
    const inserts: Array<{ sql: string; params: unknown[] | undefined }> = [];
    const db = observedDb(tdb.db, (sql, params) => { if (sql.includes('INSERT INTO tasks') && sql.includes('free AS')) inserts.push({ sql, params }); });
    const repo = new TaskRepository(jsonCodec);
    const bus = new EventBus();
    const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
    tasks.assigner = eng;
    await insertAgent(tdb.db, 'bl-agent', ['served'], 10);
    // The backlog: older than anything the agent can serve, at every priority it uses.
    for (let i = 0; i < BACKLOG / 1000; i++) {
      await tasks.createMany(Array.from({ length: 1000 }, (_, j) => ({ task_type: 'stuck', required_capabilities: ['stuck'], priority: (j % 3) + 4 })), admin);
    }
    await tdb.db.query('ANALYZE tasks');
    const delivered: DeliveredTask[] = [];
    await eng.addSlot({ agent_id: 'bl-agent', capabilities: new Set(['served']), max: 10, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await eng.settle();

    // A create the agent can run now: leased in its own statement, which reads none of the backlog.
    const created = await tasks.create({ task_type: 'served', required_capabilities: ['served'], priority: 5 }, admin);
    expect(delivered.map((d) => d.task_id)).toEqual([created.task_id]);
    expect(inserts).toHaveLength(1);
    expect(await rowsRead(tdb, inserts[0]!.sql, inserts[0]!.params)).toBeLessThan(50);

    // Tasks the agent can serve wait behind the backlog; the queue head finds them without reading it.
    await tasks.createMany(Array.from({ length: 20 }, (_, i) => ({ task_type: 'served', required_capabilities: ['served'], priority: (i % 3) + 4 })), admin);
    const head = await readQueueHead(tdb.db, ['served'], 5, { perMinute: 1, cap: 5 });
    expect(head).toHaveLength(5);
    expect(head.every((r) => r.required_capabilities.join() === 'served')).toBe(true);
    const sent: Array<{ sql: string; params: unknown[] | undefined }> = [];
    await readQueueHead(observedDb(tdb.db, (sql, params) => sent.push({ sql, params })), ['served'], 5, { perMinute: 1, cap: 5 });
    expect(await rowsRead(tdb, sent[0]!.sql, sent[0]!.params)).toBeLessThan(100);
    eng.stop();
  });

  it('takes and serves a task needing the most capabilities the API accepts (50 of 64 characters)', async () => {
    // Random, so that they do not compress: the array is larger than a btree entry may be.
    const caps = Array.from({ length: 50 }, () => `c${(randomUUID() + randomUUID()).replaceAll('-', '').slice(0, 63)}`);
    expect(caps.every((c) => c.length === 64)).toBe(true);
    const repo = new TaskRepository(jsonCodec);
    const bus = new EventBus();
    const tasks = new TaskService(tdb.db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const eng = new AssignmentEngine(tdb.db, repo, bus, { defaultStrategy: 'capability_match' });
    tasks.assigner = eng;
    // Waiting first (no agent yet), then created at once for a connected agent that covers them.
    const waiting = await tasks.create({ task_type: 'wide', required_capabilities: caps }, admin);
    expect(waiting.queue_position).toBeGreaterThan(0);
    await insertAgent(tdb.db, 'wide-agent', caps, 5);
    const delivered: DeliveredTask[] = [];
    await eng.addSlot({ agent_id: 'wide-agent', capabilities: new Set(caps), max: 5, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await eng.settle();
    const atOnce = await tasks.create({ task_type: 'wide', required_capabilities: [...caps].reverse() }, admin);
    expect(delivered.map((d) => d.task_id)).toEqual([waiting.task_id, atOnce.task_id]);
    eng.stop();
  });
});
