/**
 * The orphan-lease sweep reads the presence of every agent holding leases in two calls, however
 * many they are, and still tells the served (a socket anywhere, a slot here, REST heartbeats)
 * from the orphaned, whose leases time out once the grace period has passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, jsonCodec } from '../core/index.ts';
import { MemoryCoordination, type Coordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { AssignmentEngine, OrphanLeaseSweeper, TaskRepository, TaskService, noOutcomes } from './index.ts';
import type { Principal } from '../auth/index.ts';

const admin: Principal = { type: 'user', id: 'orphan-admin', role: 'admin', name: 'orphans' };
const GRACE_MS = 60_000;

describe.each(engines())('orphan-lease sweep on $name', (engine) => {
  let tdb: TestDb;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  /** What a sweep needs, on this store; `stop()` when done. */
  const services = () => {
    const repo = new TaskRepository(jsonCodec);
    const bus = new EventBus();
    const tasks = new TaskService(tdb.db, repo, noOutcomes, bus, { retryBaseMs: 1000, retryCapMs: 60_000 });
    const taskEngine = new AssignmentEngine(tdb.db, repo, bus, { defaultStrategy: 'capability_match' });
    const coord = new MemoryCoordination();
    return { repo, tasks, taskEngine, coord, stop: async () => { taskEngine.stop(); await coord.close(); } };
  };

  it('reads presence in two calls for 60 lease holders and times out only the orphaned ones', async () => {
    const { repo, tasks, taskEngine, coord, stop } = services();
    try {
      const n = 60;
      const agent = (i: number) => `orphan-${i}`;
      const created = await tasks.createMany(Array.from({ length: n }, () => ({ task_type: 'orphan', required_capabilities: ['orphan-cap'] })), admin);
      for (let i = 0; i < n; i++) {
        await tdb.db.query(`INSERT INTO agents (agent_id, name, type, capabilities, version, api_key_hash, status) VALUES ($1, $1, 'general', ARRAY['orphan-cap'], '1.0.0', 'h', 'active')`, [agent(i)]);
        await tdb.db.query(`UPDATE tasks SET status = 'assigned', attempt = 1, assigned_agent = $2, assigned_at = now(), lease_expires_at = now() + interval '1 hour' WHERE task_id = $1`, [created[i]!.task_id, agent(i)]);
      }
      // 0–19: a socket on some process; 20–39: REST heartbeats; 40–48: a socket's record gone and
      // only a websocket heartbeat left (not served); 49: a slot in this process; 50–59: nothing.
      for (let i = 0; i < 20; i++) await coord.setPresence('agent-socket', agent(i), { server: 'elsewhere' }, 600_000);
      for (let i = 20; i < 40; i++) await coord.setPresence('agent', agent(i), { transport: 'rest' }, 600_000);
      for (let i = 40; i < 49; i++) await coord.setPresence('agent', agent(i), { transport: 'ws' }, 600_000);
      await taskEngine.addSlot({ agent_id: agent(49), capabilities: new Set(['orphan-cap']), max: 5, score: 1, builtin: false, available: true, deliver: () => {} });

      const calls: Record<string, number> = {};
      const counted = new Proxy(coord, {
        get(target, prop, receiver) {
          const v: unknown = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          return (...args: unknown[]) => {
            calls[String(prop)] = (calls[String(prop)] ?? 0) + 1;
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }) as Coordination;
      const sweeper = new OrphanLeaseSweeper(tdb.db, counted, taskEngine, tasks, GRACE_MS);

      const t0 = Date.now();
      expect(await sweeper.sweep(t0)).toBe(0); // orphans noticed, within the grace period
      expect(calls).toEqual({ getPresenceMany: 2 });
      expect(await sweeper.sweep(t0 + GRACE_MS + 1)).toBe(19);
      expect(calls).toEqual({ getPresenceMany: 4 });

      const status = async (i: number) => (await repo.get(tdb.db, created[i]!.task_id))!.status;
      for (const i of [0, 19, 20, 39, 49]) expect(await status(i), agent(i)).toBe('assigned');
      for (const i of [40, 48, 50, 59]) expect(await status(i), agent(i)).not.toBe('assigned');
    } finally {
      await stop();
    }
  });

  it('times out the leases of a built-in agent whose process is gone, not of one whose process is alive', async () => {
    const { repo, tasks, taskEngine, coord, stop } = services();
    try {
      await tdb.db.query(`UPDATE tasks SET status = 'cancelled' WHERE status IN ('assigned', 'running')`); // the previous test's leases
      const created = await tasks.createMany([0, 1].map(() => ({ task_type: 'orphan', required_capabilities: ['orphan-builtin-cap'] })), admin);
      const ids = ['builtin-gone-8080', 'builtin-alive-8081'];
      for (const [i, id] of ids.entries()) {
        await tdb.db.query(`INSERT INTO agents (agent_id, name, type, capabilities, version, api_key_hash, status, builtin) VALUES ($1, $1, 'pipeline-worker', ARRAY['orphan-builtin-cap'], '1.0.0', 'h', 'active', true)`, [id]);
        await tdb.db.query(`UPDATE tasks SET status = 'assigned', attempt = 1, assigned_agent = $2, assigned_at = now(), lease_expires_at = now() + interval '1 hour' WHERE task_id = $1`, [created[i]!.task_id, id]);
      }
      // The live one's process says it serves it (BuiltinAgents' liveness); the other process died.
      await coord.setPresence('agent-socket', ids[1]!, { builtin: true }, 600_000);
      const sweeper = new OrphanLeaseSweeper(tdb.db, coord, taskEngine, tasks, GRACE_MS);
      const t0 = Date.now();
      expect(await sweeper.sweep(t0)).toBe(0);
      expect(await sweeper.sweep(t0 + GRACE_MS + 1)).toBe(1);
      expect((await repo.get(tdb.db, created[0]!.task_id))!.status).not.toBe('assigned');
      expect((await repo.get(tdb.db, created[1]!.task_id))!.status).toBe('assigned');
    } finally {
      await stop();
    }
  });
});
