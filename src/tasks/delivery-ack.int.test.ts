/**
 * A delivery ack is written as an accept shortly after, unless the agent's result for the same
 * lease arrives first: then the result alone records the task (assigned → completed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'ack-admin', role: 'admin', name: 'ack' };

describe.each(engines())('delivery acks on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('writes an ack as an accept after the hold, or lets the result that follows at once record both', async () => {
    const repo = new TaskRepository(jsonCodec);
    const tasks = new TaskService(tdb.db, repo, noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const [slow, quick] = await tasks.createMany([{ task_type: 'ack', required_capabilities: ['ack'] }, { task_type: 'ack', required_capabilities: ['ack'] }], admin);
    const lease = (id: string) => tdb.db.query(`UPDATE tasks SET status = 'assigned', attempt = 1, assigned_agent = 'ack-agent', assigned_at = now(), lease_expires_at = now() + interval '5 min' WHERE task_id = $1`, [id]);
    await lease(slow!.task_id);
    await lease(quick!.task_id);
    const transitions = async (id: string) => (await repo.getManyWithHistory(tdb.db, [id])).get(id)!.history.map((h) => `${h.from_status ?? '∅'}→${h.to_status}`);

    tasks.acknowledgeDelivery(slow!.task_id, 'ack-agent', 1);
    tasks.acknowledgeDelivery(quick!.task_id, 'ack-agent', 1);
    expect((await tasks.complete(quick!.task_id, 'ack-agent', 1, { ok: true })).status).toBe('completed');
    const deadline = Date.now() + 3000;
    while ((await repo.get(tdb.db, slow!.task_id))!.status !== 'running' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));

    expect(await transitions(slow!.task_id)).toEqual(['∅→pending', 'assigned→running']); // leased by hand above: no assign entry
    expect((await repo.get(tdb.db, slow!.task_id))!.started_at).not.toBeNull();
    expect(await transitions(quick!.task_id)).toEqual(['∅→pending', 'assigned→completed']);
    const done = (await repo.get(tdb.db, quick!.task_id))!;
    expect(done.status).toBe('completed');
    expect(done.started_at).not.toBeNull(); // taken from the assignment
  });
});
