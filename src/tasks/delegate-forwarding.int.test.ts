/**
 * POST /tasks/{id}/delegate naming an agent connected to another process: the request is
 * forwarded over the coordination store to the process holding the agent's slot, which
 * assigns and delivers; its answer (or its error) comes back to the caller.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { AgentRepository } from '../agents/index.ts';
import { createCoordination, type Coordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

// eslint-disable-next-line no-restricted-properties -- test input set by test/helpers/global-setup.ts, not configuration
const redisUrl = process.env.MCP_TEST_REDIS_URL ?? '';
const admin: Principal = { type: 'user', id: 'fwd-admin', role: 'admin', name: 'fwd' };

describe.skipIf(!redisUrl).each(engines())('delegate forwarded across processes on $name', (engine) => {
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
    await new AgentRepository().insert(tdb.db, { agent_id: agent, name: agent, type: 'general', capabilities: ['fwd'], version: '1.0.0', endpoint_url: null, health_check_url: null, max_concurrent_tasks: 5, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x' });
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
});
