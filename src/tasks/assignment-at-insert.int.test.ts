/**
 * Assignment at insert: a task that can run now is created already leased to a capable agent
 * of this process (one statement, one commit), with the history of a normal assignment; picks
 * count against the agent's capacity; and a task that an agent could serve already waiting in
 * the queue keeps its turn (the new task is queued behind it instead).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'insert-admin', role: 'admin', name: 'insert' };

describe.each(engines())('assignment at insert on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  async function setup(agent: string, cap: string, max: number) {
    const db = tdb.db;
    const repo = new TaskRepository(jsonCodec);
    const bus = new EventBus();
    const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
    tasks.assigner = eng;
    await insertAgent(db, agent, [cap], max);
    const delivered: DeliveredTask[] = [];
    await eng.addSlot({ agent_id: agent, capabilities: new Set([cap]), max, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
    await eng.settle();
    return { db, repo, tasks, eng, delivered };
  }

  it('creates a task that can run now already leased, with the history of an assignment', async () => {
    const { db, repo, tasks, eng, delivered } = await setup('ins-a', 'ins-a', 5);
    try {
      const created = await tasks.create({ task_type: 'ins', required_capabilities: ['ins-a'], parameters: { n: 1 } }, admin);
      // Delivered by the create itself: no dispatch round ran for it.
      expect(delivered.map((d) => d.task_id)).toEqual([created.task_id]);
      expect(delivered[0]).toMatchObject({ attempt: 1, parameters: { n: 1 } });
      expect(created.queue_position).toBe(0);
      const row = await repo.get(db, created.task_id);
      expect(row).toMatchObject({ status: 'assigned', attempt: 1, assigned_agent: 'ins-a' });
      expect(row!.lease_expires_at).not.toBeNull();
      expect((await repo.getManyWithHistory(db, [created.task_id])).get(created.task_id)!.history.map((h) => [h.from_status, h.to_status, h.attempt, h.agent_id])).toEqual([
        [null, 'pending', 0, null],
        ['pending', 'assigned', 1, 'ins-a'],
      ]);
      expect(eng.loadOf('ins-a')).toBe(1);
      // The lease works like any other: accepted and completed by the agent.
      await tasks.accept(created.task_id, 'ins-a', 1);
      expect((await tasks.complete(created.task_id, 'ins-a', 1, { ok: true })).status).toBe('completed');
      expect(eng.loadOf('ins-a')).toBe(0);
    } finally {
      eng.stop();
    }
  });

  it('counts picks against capacity: of a batch, only what fits is leased, the rest queues', async () => {
    const { db, tasks, eng, delivered } = await setup('ins-b', 'ins-b', 2);
    try {
      const rows = await tasks.createMany(Array.from({ length: 5 }, (_, i) => ({ task_type: 'ins', required_capabilities: ['ins-b'], parameters: { i } })), admin);
      expect(rows.map((r) => r.status)).toEqual(['assigned', 'assigned', 'pending', 'pending', 'pending']);
      expect(delivered.map((d) => d.task_id)).toEqual(rows.slice(0, 2).map((r) => r.task_id));
      await eng.settle();
      expect(delivered).toHaveLength(2); // full: the queued ones wait for room
      await tasks.complete(rows[0]!.task_id, 'ins-b', 1, {});
      await eng.settle();
      expect(delivered.map((d) => d.task_id)).toEqual(rows.slice(0, 3).map((r) => r.task_id));
      const { rows: st } = await db.query<{ status: string }>('SELECT status FROM tasks WHERE task_id = ANY($1::uuid[]) ORDER BY created_at, task_id', [rows.map((r) => r.task_id)]);
      expect(st.filter((s) => s.status === 'pending')).toHaveLength(2);
    } finally {
      eng.stop();
    }
  });

  it('queues a new task behind a waiting one the agent could serve, so the older runs first', async () => {
    const { db, repo, tasks, eng, delivered } = await setup('ins-c', 'ins-c', 1);
    try {
      // Waiting without the engine hearing of it (as if created by another process a moment ago).
      const waiting = tasks.normalize({ task_type: 'ins', required_capabilities: ['ins-c'], parameters: { older: true } }, 'user:insert-admin');
      await repo.insertMany(db, [waiting]);
      const created = await tasks.create({ task_type: 'ins', required_capabilities: ['ins-c'], parameters: { newer: true } }, admin);
      expect(created.queue_position).toBeGreaterThanOrEqual(2);
      expect((await repo.get(db, created.task_id))!.status).toBe('pending');
      await eng.settle();
      expect(delivered.map((d) => d.task_id)).toEqual([waiting.task_id]);
      expect(eng.loadOf('ins-c')).toBe(1);
    } finally {
      eng.stop();
    }
  });
});
