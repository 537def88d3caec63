/**
 * Room held by a pick whose lease is still being written (AssignmentEngine.unreserve). Two
 * paths may pick one task for the same slot — a round and another process's announcement —
 * and a task announced meanwhile finds the slot full. When the pick ends without its lease
 * (the task was taken elsewhere), that task gets a round at once instead of waiting for the
 * safety net (off here). The lease statement is held at a gate to make the race certain.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EventBus } from '../core/index.ts';
import { FieldCipher, KeyRing } from '../security/index.ts';
import type { Db } from '../store/index.ts';
import { engines, hookedDb, storeAndCoordination } from '../../test/helpers/stores.ts';
import { insertAgent } from '../../test/helpers/agents.ts';
import { AssignmentEngine, ENGINE_CHANNELS, TaskRepository, TaskService, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';
import { until } from '../../test/helpers/until.ts';

const admin: Principal = { type: 'user', id: 'held-back-admin', role: 'admin', name: 'held back' };

/** The database, with lease statements (`WITH cur AS`) waiting while `closed` until `open()`. */
function gatedDb(db: Db) {
  let release: () => void = () => {};
  let gate: Promise<void> | null = null;
  let waiting = 0;
  const gated = hookedDb(db, {
    before: async (sql) => {
      if (gate && sql.trimStart().startsWith('WITH cur AS')) {
        waiting++;
        await gate;
      }
    },
  });
  return {
    db: gated,
    close: () => { gate = new Promise<void>((r) => { release = r; }); },
    open: () => { gate = null; release(); },
    waiting: () => waiting,
  };
}

describe.each(engines())('a pick that ends without its lease on $name', (engine) => {
  const ctx = storeAndCoordination(engine);

  it('gives the room it held to a task announced meanwhile, at once', async () => {
    const { tdb, coord } = ctx;
    const repo = new TaskRepository(new FieldCipher(KeyRing.fromMasterKey(randomBytes(32))));
    // Tasks created where no engine hears of them: only the announcements below tell the engine.
    const tasks = new TaskService(tdb.db, repo, noOutcomes, new EventBus(), { retryBaseMs: 1000, retryCapMs: 60_000 });
    const gate = gatedDb(tdb.db);
    const eng = new AssignmentEngine(gate.db, repo, new EventBus(), { defaultStrategy: 'capability_match' });
    await eng.connect(coord, 0); // no safety net
    try {
      const cap = `held-${randomUUID().slice(0, 8)}`;
      const agent = `held-agent-${randomUUID()}`;
      await insertAgent(tdb.db, agent, [cap], 1);
      const delivered: DeliveredTask[] = [];
      await eng.addSlot({ agent_id: agent, capabilities: new Set([cap]), max: 1, score: 0, builtin: false, available: true, deliver: (t) => delivered.push(t) });
      await eng.settle(); // its round found nothing waiting
      const [first, second] = await tasks.createMany([{ task_type: 'held', required_capabilities: [cap] }, { task_type: 'held', required_capabilities: [cap] }], admin);
      const announce = (id: string) => coord.publish(ENGINE_CHANNELS.wake, { origin: 'another-process', tasks: [{ id, caps: [cap], strategy: null }] });

      gate.close();
      await announce(first!.task_id); // picked: the slot's one place is held while the lease is written
      expect(await until(() => gate.waiting() === 1, 3000)).toBe(true);
      await announce(second!.task_id); // no room now
      await new Promise((r) => setTimeout(r, 50));
      // Meanwhile another process took the first task: this lease comes back empty.
      await tdb.db.query(`UPDATE tasks SET status = 'assigned', attempt = attempt + 1, assigned_agent = 'elsewhere', assigned_at = now() WHERE task_id = $1`, [first!.task_id]);
      gate.open();

      expect(await until(() => delivered.length > 0, 3000)).toBe(true);
      expect(delivered.map((t) => t.task_id)).toEqual([second!.task_id]);
      const { rows } = await tdb.db.query<{ status: string; assigned_agent: string }>('SELECT status, assigned_agent FROM tasks WHERE task_id = $1', [second!.task_id]);
      expect(rows[0]).toEqual({ status: 'assigned', assigned_agent: agent });
    } finally {
      eng.stop();
    }
  });
});
