/**
 * Queue positions past the exact limit: a create's own statement counts at most the limit, and
 * deeper positions come from one full count a second (QueueDepth) — exact when that count is
 * taken for the create, then carried forward by the creates that follow.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { engines, observedDb, type TestDb } from '../../test/helpers/stores.ts';
import { TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Db } from '../store/index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'depth-admin', role: 'admin', name: 'depth' };
const LIMIT = 5;
const isFullCount = (sql: string) => sql.includes('GROUP BY priority');

describe.each(engines())('queue positions past the exact limit on $name', (engine) => {
  let tdb: TestDb;
  beforeEach(async () => { tdb = await engine.open(); });
  afterEach(async () => tdb?.dispose());

  function service(db: Db = tdb.db) {
    const clock = { now: 1_000_000 };
    const statements: string[] = [];
    const tasks = new TaskService(observedDb(db, (sql) => statements.push(sql)), new TaskRepository(jsonCodec), noOutcomes, new EventBus(),
      { retryBaseMs: 1000, retryCapMs: 60_000, queuePositionExactLimit: LIMIT, now: () => clock.now });
    const create = async (priority = 5) => (await tasks.create({ task_type: 'depth', required_capabilities: ['depth'], priority }, admin)).queue_position;
    /** Pending tasks, oldest first. */
    const pending = async () => (await tasks.list({ status: 'pending' }, admin, 'created_at:asc', 100, 0)).tasks;
    return { tasks, clock, statements, create, pending };
  }

  it('counts exactly up to the limit, then once a second however many creates follow', async () => {
    const { tasks, clock, statements, create, pending } = service();
    const positions: number[] = [];
    for (let i = 0; i < LIMIT; i++) positions.push(await create());
    expect(positions).toEqual([1, 2, 3, 4, 5]);
    expect(statements.filter(isFullCount)).toHaveLength(0);

    // Past the limit: one full count, taken for the 6th create (exact), carried forward for the next ones.
    for (let i = 0; i < 4; i++) positions.push(await create());
    expect(positions.slice(LIMIT)).toEqual([6, 7, 8, 9]);
    expect(statements.filter(isFullCount)).toHaveLength(1);

    // A higher priority with few tasks ahead is counted exactly in the create's own statement.
    expect(await create(9)).toBe(1);
    expect(statements.filter(isFullCount)).toHaveLength(1);

    // Within the second the queue may move without the estimate knowing (an estimate, documented so)…
    for (const t of (await pending()).filter((x) => x.priority === 5).slice(0, 3)) await tasks.cancel(t.task_id, 'shrink the queue', admin);
    expect(await create()).toBe(11); // the count carried forward: 10 ahead or level before the cancels, + itself
    // …and a second later the next deep create counts again, exactly: 8 ahead (10 at priority 5 and 1 at 9, 3 of them cancelled), + itself.
    clock.now += 1000;
    expect(await create()).toBe(9);
    expect(statements.filter(isFullCount)).toHaveLength(2);
  });

  it('gives a waiting task its position through the same limit (POST /tasks/{id}/delegate)', async () => {
    const { tasks, create, pending } = service();
    for (let i = 0; i < LIMIT + 3; i++) await create();
    const waiting = await pending();
    const rows = await Promise.all([waiting[1]!, waiting.at(-1)!].map((t) => tasks.getRow(t.task_id)));
    expect(await tasks.queuePosition(rows[0]!)).toBe(2);
    expect(await tasks.queuePosition(rows[1]!)).toBe(LIMIT + 3); // past the limit: the full count (every pending task at its priority or higher)
  });

  it('still answers a create whose full count fails, with the limit as a lower bound', async () => {
    const failing: Db = { ...tdb.db, query: (sql, params) => (isFullCount(sql) ? Promise.reject(new Error('count failed')) : tdb.db.query(sql, params)) };
    const { create, pending } = service(failing);
    for (let i = 0; i < LIMIT + 1; i++) await create();
    expect(await create()).toBe(LIMIT + 1); // ahead: the limit (a lower bound), + itself
    expect(await pending()).toHaveLength(LIMIT + 2);
  });
});
