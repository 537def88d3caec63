/**
 * Two processes sharing the coordination store. POST /tasks/{id}/delegate naming an agent
 * connected to another process: the request is forwarded to the process holding the agent's
 * slot, which assigns and delivers; its answer (or its error) comes back to the caller. New
 * tasks created on a process without room reach another process's agents through the wake-up,
 * which describes them (ids, capabilities, strategy — no parameters), so the process serving
 * the agents leases them directly; a malformed description falls back to a round.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, ENGINE_CHANNELS, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const admin: Principal = { type: 'user', id: 'fwd-admin', role: 'admin', name: 'fwd' };

describe.skipIf(!redisUrl).each(engines())('delegation across processes on $name', (engine) => {
  let tdb: TestDb;
  const coords: Coordination[] = [];
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => {
    for (const c of coords) await c.close();
    await tdb?.dispose();
  });

  it('assigns to the named agent through the process that serves it, relays its errors, and leaves the task queued when nobody serves the agent', async () => {
    const prefix = `fwd-${randomUUID()}:`;
    const [coordA, coordB] = await Promise.all([createCoordination({ redisUrl, keyPrefix: prefix }), createCoordination({ redisUrl, keyPrefix: prefix })]);
    coords.push(coordA, coordB);
    const repo = new TaskRepository(jsonCodec);
    // The tasks are created on a bus no engine listens to: only the delegate assigns them.
    const tasks = new TaskService(tdb.db, repo, noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const engA = new AssignmentEngine(tdb.db, repo, new EventBus(), { defaultStrategy: 'capability_match', forwardTimeoutMs: 500 });
    const engB = new AssignmentEngine(tdb.db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    await engA.connect(coordA, 0);
    await engB.connect(coordB, 0);
    const agent = `fwd-agent-${randomUUID()}`;
    await insertAgent(tdb.db, agent, ['fwd'], 5);
    const delivered: DeliveredTask[] = [];
    try {
      await engB.addSlot({ agent_id: agent, capabilities: new Set(['fwd']), max: 5, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
      await engB.settle();
      const [task] = await tasks.createMany([{ task_type: 'fwd', required_capabilities: ['fwd'], parameters: { n: 1 } }], admin);
      expect(engA.hasSlot(agent)).toBe(false);
      await expect(engA.delegate(task!.task_id, agent)).resolves.toEqual({ agent_id: agent, attempt: 1 });
      expect(delivered.map((d) => d.task_id)).toEqual([task!.task_id]);
      const row = (await tdb.db.query<{ status: string; assigned_agent: string }>('SELECT status, assigned_agent FROM tasks WHERE task_id = $1', [task!.task_id])).rows[0];
      expect(row).toEqual({ status: 'assigned', assigned_agent: agent });
      // The serving process's refusal reaches the caller as the same error.
      await expect(engA.delegate(task!.task_id, agent)).rejects.toMatchObject({ code: 'TASK_ALREADY_ASSIGNED' });
      // An agent no process serves: no answer, the task stays pending.
      const [other] = await tasks.createMany([{ task_type: 'fwd', required_capabilities: ['fwd'] }], admin);
      await expect(engA.delegate(other!.task_id, 'fwd-nobody')).resolves.toBeNull();
      const still = (await tdb.db.query<{ status: string }>('SELECT status FROM tasks WHERE task_id = $1', [other!.task_id])).rows[0];
      expect(still?.status).toBe('pending');
    } finally {
      engA.stop();
      engB.stop();
    }
  });

  it('describes new tasks so the process serving the agents leases them, and survives a malformed wake-up', async () => {
    const prefix = `wake-${randomUUID()}:`;
    const [coordA, coordB, probe] = await Promise.all([1, 2, 3].map(() => createCoordination({ redisUrl, keyPrefix: prefix })));
    coords.push(coordA!, coordB!, probe!);
    const repo = new TaskRepository(jsonCodec);
    const busA = new EventBus();
    const tasksA = new TaskService(tdb.db, repo, noOutcomes, busA, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const engA = new AssignmentEngine(tdb.db, repo, busA, { defaultStrategy: 'capability_match' });
    tasksA.assigner = engA; // A has no agents: nothing is leased at insert there
    const engB = new AssignmentEngine(tdb.db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    await engA.connect(coordA!, 0);
    await engB.connect(coordB!, 0);
    const wakes: unknown[] = [];
    await probe!.subscribe(ENGINE_CHANNELS.wake, (m) => { wakes.push(m); });
    const agent = `wake-agent-${randomUUID()}`;
    await insertAgent(tdb.db, agent, ['wake'], 10);
    const delivered: DeliveredTask[] = [];
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 5000;
      while (delivered.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      await engB.addSlot({ agent_id: agent, capabilities: new Set(['wake']), max: 10, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
      await engB.settle();
      const created = await tasksA.createMany([{ task_type: 'wake', required_capabilities: ['wake'], parameters: { secret: 'not in the wake-up' } }, { task_type: 'wake', required_capabilities: ['wake'], strategy: 'least_loaded' }], admin);
      expect(created.map((c) => c.status)).toEqual(['pending', 'pending']);
      await waitFor(2);
      expect(delivered.map((d) => d.task_id).sort()).toEqual(created.map((c) => c.task_id).sort());
      expect(delivered.find((d) => d.task_id === created[0]!.task_id)?.parameters).toEqual({ secret: 'not in the wake-up' });
      const described = wakes.find((w) => Array.isArray((w as { tasks?: unknown }).tasks)) as { tasks: Array<{ id: string; caps: string[]; strategy: string | null }> } | undefined;
      expect(described?.tasks).toEqual([
        { id: created[0]!.task_id, caps: ['wake'], strategy: null },
        { id: created[1]!.task_id, caps: ['wake'], strategy: 'least_loaded' },
      ]);
      expect(JSON.stringify(wakes)).not.toContain('not in the wake-up');
      const { rows } = await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE task_id = ANY($1::uuid[]) AND status = 'assigned' AND assigned_agent = $2 AND attempt = 1`, [created.map((c) => c.task_id), agent]);
      expect(rows[0]!.n).toBe(2);

      // A malformed description is ignored: the task is still found by a round.
      const [third] = await repo.insertMany(tdb.db, [tasksA.normalize({ task_type: 'wake', required_capabilities: ['wake'] }, 'user:fwd-admin')]);
      await probe!.publish(ENGINE_CHANNELS.wake, { origin: 'someone', tasks: [{ id: 'not-a-uuid', caps: ['wake'], strategy: null }] });
      await waitFor(3);
      expect(delivered.map((d) => d.task_id)).toContain(third!.task_id);
    } finally {
      engA.stop();
      engB.stop();
    }
  });
});
