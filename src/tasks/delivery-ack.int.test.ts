/**
 * A delivery ack is written as an accept shortly after, unless the agent's result for the same
 * lease arrives first: then the result alone records the task (assigned → completed). An agent
 * that names its task in upper case accepts it and records its result like any other, once.
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

  // A task id is a UUID whatever the case of its hex digits (the schemas accept both).
  it('accepts and records a result named in upper case once, and knows the repeat as a duplicate', async () => {
    const bus = new EventBus();
    const completed: string[] = [];
    const accepted: string[] = [];
    bus.on('task:completed', (e) => completed.push(e.task_id));
    bus.on('task:accepted', (e) => accepted.push(e.task_id));
    const tasks = new TaskService(tdb.db, new TaskRepository(jsonCodec), noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const [task] = await tasks.createMany([{ task_type: 'case', required_capabilities: ['case'] }], admin);
    const id = task!.task_id;
    await tdb.db.query(`UPDATE tasks SET status = 'assigned', attempt = 1, assigned_agent = 'case-agent', assigned_at = now(), lease_expires_at = now() + interval '5 min' WHERE task_id = $1`, [id]);
    expect(await tasks.acceptLease(id.toUpperCase(), 'case-agent', 1)).toEqual({ task_id: id, status: 'running', attempt: 1 });
    expect(accepted).toEqual([id]);
    expect(await tasks.complete(id.toUpperCase(), 'case-agent', 1, { ok: true })).toEqual({ task_id: id, status: 'completed', attempt: 1, duplicate: false });
    expect(completed).toEqual([id]);
    expect(await tasks.complete(id, 'case-agent', 1, { ok: true })).toEqual({ task_id: id, status: 'completed', attempt: 1, duplicate: true });
    expect((await tasks.detail(id.toUpperCase(), admin)).result).toEqual({ ok: true });
  });
});
