/**
 * Property: under any interleaving of create / connect / disconnect / accept / progress /
 * complete / fail / cancel / retry promotion, with stale attempts thrown in, no task is lost,
 * at most one result is recorded per task, and every recorded transition is legal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EventBus, isAppError, jsonCodec } from '../core/index.ts';
import { AgentRepository } from '../agents/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { AssignmentEngine, TaskRepository, TaskService, canTransition, noOutcomes, type DeliveredTask } from './index.ts';
import type { Principal } from '../auth/index.ts';

const ALLOWED_ERRORS = new Set(['STALE_ATTEMPT', 'NOT_ASSIGNED_AGENT', 'INVALID_STATUS_TRANSITION', 'TASK_NOT_FOUND']);
const admin: Principal = { type: 'user', id: 'prop-admin', role: 'admin', name: 'prop' };

type Op =
  | { kind: 'create'; priority: number; maxRetries: number }
  | { kind: 'connect'; agent: number }
  | { kind: 'disconnect'; agent: number }
  | { kind: 'accept' | 'progress' | 'complete' | 'fail' | 'stale'; pick: number; retryable: boolean }
  | { kind: 'cancel'; pick: number }
  | { kind: 'sweep' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('create' as const), priority: fc.integer({ min: 1, max: 10 }), maxRetries: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('connect' as const), agent: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disconnect' as const), agent: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constantFrom('accept' as const, 'progress' as const, 'complete' as const, 'fail' as const, 'stale' as const), pick: fc.nat(), retryable: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
);

describe.each(engines())('task lifecycle property on $name', (engine) => {
  let tdb: TestDb;
  let run = 0;
  beforeAll(async () => { tdb = await engine.open(); });
  afterAll(async () => tdb?.dispose());

  it('loses nothing, records at most one result, makes only legal transitions', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 60 }), async (ops) => {
      run++;
      const db = tdb.db;
      const bus = new EventBus();
      const agentsRepo = new AgentRepository();
      const repo = new TaskRepository(jsonCodec);
      const tasks = new TaskService(db, repo, noOutcomes, bus, { retryBaseMs: 1, retryCapMs: 2 });
      const eng = new AssignmentEngine(db, repo, bus, { defaultStrategy: 'capability_match' });
      const cap = `cap_run_${run}`;
      const agentIds = [0, 1, 2].map((i) => `prop-${run}-${i}`);
      for (const id of agentIds) {
        await agentsRepo.insert(db, { agent_id: id, name: id, type: 'general', capabilities: [cap], version: '1.0.0', endpoint_url: null, health_check_url: null, max_concurrent_tasks: 2, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x' });
      }
      const created: string[] = [];
      const deliveries: DeliveredTask[] = [];
      const firstResult = new Map<string, unknown>();
      let n = 0;
      try {
        for (const op of ops) {
          try {
            if (op.kind === 'create') {
              const rows = await tasks.createMany([{ task_type: 'prop', required_capabilities: [cap], priority: op.priority, max_retries: op.maxRetries, parameters: { i: n++ } }], admin);
              created.push(rows[0]!.task_id);
            } else if (op.kind === 'connect') {
              const id = agentIds[op.agent]!;
              await eng.addSlot({ agent_id: id, capabilities: new Set([cap]), max: 2, score: 0, builtin: false, available: true, deliver: (t) => deliveries.push({ ...t, metadata: { ...t.metadata, lease_expires_at: id } }) });
            } else if (op.kind === 'disconnect') {
              const id = agentIds[op.agent]!;
              eng.removeSlot(id);
              await tasks.timeoutAgentLeases(id, 'disconnected');
            } else if (op.kind === 'cancel') {
              if (created.length) await tasks.cancel(created[op.pick % created.length]!, 'prop', admin);
            } else if (op.kind === 'sweep') {
              await tasks.expireLeases();
            } else if ('pick' in op && deliveries.length) {
              const redelivered = deliveries.filter((x) => x.attempt > 1);
              const pool = op.kind === 'stale' && redelivered.length ? redelivered : deliveries;
              const d = pool[op.pick % pool.length]!;
              const agent = d.metadata.lease_expires_at; // the agent it was delivered to (see connect)
              if (op.kind === 'accept') await tasks.accept(d.task_id, agent, d.attempt);
              else if (op.kind === 'progress') await tasks.progress(d.task_id, agent, d.attempt, 0.5);
              else if (op.kind === 'fail') await tasks.fail(d.task_id, agent, d.attempt, { code: 'E', message: 'e', retryable: op.retryable });
              else {
                const attempt = op.kind === 'stale' ? (d.attempt > 1 ? d.attempt - 1 : d.attempt + 1) : d.attempt;
                const data = { from: agent, attempt };
                const r = await tasks.complete(d.task_id, agent, attempt, data);
                if (!r.duplicate && !firstResult.has(d.task_id)) firstResult.set(d.task_id, data);
              }
            }
          } catch (err) {
            if (!isAppError(err) || !ALLOWED_ERRORS.has(err.code)) throw err;
          }
          // the leader's periodic sweep: backoffs that elapsed go back to the queue
          await new Promise((r) => setTimeout(r, 3));
          await tasks.promoteRetries();
          await eng.settle();
        }
      } finally {
        eng.stop();
      }
      if (!created.length) return;
      const { rows } = await db.query<{ task_id: string; status: string; result: string | null; attempt: number }>('SELECT task_id, status, result, attempt FROM tasks WHERE task_id = ANY($1::uuid[])', [created]);
      expect(rows.length).toBe(created.length); // nothing lost
      const events = await db.query<{ task_id: string; from_status: string | null; to_status: string }>('SELECT task_id, from_status, to_status FROM task_events WHERE task_id = ANY($1::uuid[]) ORDER BY event_id', [created]);
      const byTask = new Map<string, Array<{ from_status: string | null; to_status: string }>>();
      for (const e of events.rows) byTask.set(e.task_id, [...(byTask.get(e.task_id) ?? []), e]);
      for (const r of rows) {
        const hist = byTask.get(r.task_id) ?? [];
        expect(hist[0]).toMatchObject({ from_status: null, to_status: 'pending' });
        for (let i = 1; i < hist.length; i++) {
          const e = hist[i]!;
          expect(e.from_status, `${r.task_id} event ${i}`).toBe(hist[i - 1]!.to_status);
          expect(canTransition(e.from_status as never, e.to_status as never), `${e.from_status}→${e.to_status}`).toBe(true);
        }
        expect(hist[hist.length - 1]!.to_status).toBe(r.status);
        const completions = hist.filter((e) => e.to_status === 'completed').length;
        expect(completions).toBeLessThanOrEqual(1);
        if (r.status === 'completed') {
          expect(completions).toBe(1);
          expect(JSON.parse(r.result!)).toEqual(firstResult.get(r.task_id));
          expect(JSON.parse(r.result!).attempt).toBe(r.attempt); // only the current lease can record
        } else {
          expect(firstResult.has(r.task_id)).toBe(false);
        }
      }
    }), { numRuns: 40 });
  });
});
