/**
 * Detail reads arriving together share one statement, and each caller still gets only its own
 * task (or its own "not found"), with the task's history in event order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, isAppError, jsonCodec } from '../core/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'detail-admin', role: 'admin', name: 'detail' };
const worker: Principal = { type: 'agent', id: 'detail-worker', role: 'worker', name: 'detail-worker' };

describe.each(engines())('task detail reads on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('answers concurrent reads with one statement, each with its own task, history and errors', async () => {
    const statements: string[] = [];
    const tasks = new TaskService(observedDb(tdb.db, (sql) => statements.push(sql)), new TaskRepository(jsonCodec), noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const created = await tasks.createMany(Array.from({ length: 5 }, (_, i) => ({ task_type: 'detail', required_capabilities: ['detail'], parameters: { i } })), admin);
    await tasks.cancel(created[4]!.task_id, 'no longer needed', admin);
    const missing = '00000000-0000-4000-8000-000000000000';
    statements.length = 0;
    const outcomes = await Promise.all([
      ...created.map((t) => tasks.detail(t.task_id, admin)),
      tasks.detail(created[2]!.task_id.toUpperCase(), admin),
      tasks.detail(missing, admin).catch((e: unknown) => (isAppError(e) ? e.code : e)),
      tasks.detail(created[0]!.task_id, worker).catch((e: unknown) => (isAppError(e) ? e.code : e)), // neither created by nor assigned to it
    ]);
    expect(statements.filter((s) => s.includes('FROM task_events'))).toHaveLength(1);
    const views = outcomes.slice(0, 6) as Array<Awaited<ReturnType<typeof tasks.detail>>>;
    expect(views.map((v) => [v.task_id, (v.parameters as { i: number }).i])).toEqual([...created.map((t, i) => [t.task_id, i]), [created[2]!.task_id, 2]]);
    expect(views[0]!.history.map((h) => h.to_status)).toEqual(['pending']);
    expect(views[4]!.history.map((h) => [h.from_status, h.to_status])).toEqual([[null, 'pending'], ['pending', 'cancelled']]);
    expect(outcomes.slice(6)).toEqual(['TASK_NOT_FOUND', 'TASK_NOT_FOUND']);
  });
});
