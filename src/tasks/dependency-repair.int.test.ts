/**
 * A task created with a dependency while that dependency's completion is in flight: the create
 * counts the dependency as unfinished, the completion's statement (its snapshot taken before the
 * create committed) does not see the new dependent — it would wait forever. The leader's
 * dependency repair releases it. On PostgreSQL the race is forced: the completion is held at the
 * dependency's row (after taking its snapshot) while the dependent is created.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, lockWaiters, pgUrlWithSchema, type TestDb } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';
import type { Db } from '../store/index.ts';

const admin: Principal = { type: 'user', id: 'dep-admin', role: 'admin', name: 'dep' };

/** A task service, and one task `cap` leased to an agent (the dependency, running). */
async function runningDependency(db: Db, agent: string, cap: string) {
  const repo = new TaskRepository(jsonCodec);
  const bus = new EventBus();
  const eligible: string[] = [];
  bus.on('task:eligible', (e) => { eligible.push(...e.task_ids); });
  const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
  const eng = new AssignmentEngine(db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
  await insertAgent(db, agent, [cap], 10);
  const [dep] = await tasks.createMany([{ task_type: cap, required_capabilities: [cap], parameters: {} }], admin);
  const delivered: DeliveredTask[] = [];
  await eng.addSlot({ agent_id: agent, capabilities: new Set([cap]), max: 10, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
  await eng.settle();
  eng.stop();
  expect(delivered.map((d) => d.task_id)).toEqual([dep!.task_id]);
  const dependent = () => tasks.createMany([{ task_type: 'after', required_capabilities: ['after'], parameters: {}, dependencies: [dep!.task_id] }], admin);
  return { tasks, dep: delivered[0]!, dependent, eligible };
}

const pendingDeps = async (db: Db, id: string) =>
  (await db.query<{ n: number }>('SELECT pending_deps AS n FROM tasks WHERE task_id = $1', [id])).rows[0]!.n;

describe.each(engines())('dependency repair on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('releases a waiting task whose dependencies all completed, recounts one still waiting, and leaves the rest alone', async () => {
    const db = tdb.db;
    const { tasks, dep, dependent, eligible } = await runningDependency(db, 'repair-agent', 'repair');
    const [missed] = await dependent();
    const [other] = await tasks.createMany([{ task_type: 'other', required_capabilities: ['other'], parameters: {} }], admin);
    const [both] = await tasks.createMany([{ task_type: 'after', required_capabilities: ['after'], parameters: {}, dependencies: [dep.task_id, other!.task_id] }], admin);
    expect(await pendingDeps(db, missed!.task_id)).toBe(1);
    expect(await pendingDeps(db, both!.task_id)).toBe(2);
    expect(await tasks.repairDependencies()).toBe(0); // nothing to repair while the dependency runs
    await tasks.complete(dep.task_id, 'repair-agent', dep.attempt, { ok: true });
    // The state a missed completion leaves behind (forced for real on PostgreSQL below).
    await db.query('UPDATE tasks SET pending_deps = 1 WHERE task_id = $1', [missed!.task_id]);
    await db.query('UPDATE tasks SET pending_deps = 2 WHERE task_id = $1', [both!.task_id]);
    eligible.length = 0;
    expect(await tasks.repairDependencies()).toBe(1);
    expect(eligible).toEqual([missed!.task_id]);
    expect(await pendingDeps(db, missed!.task_id)).toBe(0);
    expect(await pendingDeps(db, both!.task_id)).toBe(1); // `other` still pending
    expect(await tasks.repairDependencies()).toBe(0);
    // Only recent tasks are looked at.
    await db.query('UPDATE tasks SET pending_deps = 1 WHERE task_id = $1', [missed!.task_id]);
    expect(await tasks.repairDependencies(0)).toBe(0);
    expect(await pendingDeps(db, missed!.task_id)).toBe(1);
  });
});

for (const engine of engines().filter((e) => e.name === 'postgres')) {
  describe('a dependent created during its dependency\'s completion, on postgres', () => {
    let tdb: TestDb;
    beforeAll(async () => { tdb = await engine.open(); });
    afterAll(async () => tdb?.dispose());

    it('is missed by the completion, then released by the repair', async () => {
      const db = tdb.db;
      const { tasks, dep, dependent, eligible } = await runningDependency(db, 'race-dep-agent', 'race-dep');
      const [blocker, observer] = [0, 1].map(() => new pg.Client({ connectionString: pgUrlWithSchema(tdb.url!, tdb.schema!) }));
      await Promise.all([blocker!.connect(), observer!.connect()]);
      try {
        // Hold the dependency's row: the completion takes its snapshot, then waits for it.
        await blocker!.query('BEGIN');
        await blocker!.query('SELECT 1 FROM tasks WHERE task_id = $1 FOR KEY SHARE', [dep.task_id]);
        const completion = tasks.complete(dep.task_id, 'race-dep-agent', dep.attempt, { ok: true });
        await lockWaiters(observer!, `${tdb.schema!}.tasks`, 1);
        const [late] = await dependent(); // counts the dependency as running, commits
        expect(late!.pending_deps).toBe(1);
        await blocker!.query('COMMIT');
        expect((await completion).status).toBe('completed');
        expect(await pendingDeps(db, late!.task_id)).toBe(1); // missed: nothing else would release it
        eligible.length = 0;
        expect(await tasks.repairDependencies()).toBe(1);
        expect(eligible).toEqual([late!.task_id]);
        expect(await pendingDeps(db, late!.task_id)).toBe(0);
      } finally {
        await Promise.all([blocker!.end(), observer!.end()]);
      }
    });
  });
}
