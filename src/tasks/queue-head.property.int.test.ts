/**
 * Property: the queue head read from per-level index scans (`readQueueHead`) is the queue head
 * of the definition — every eligible pending task sorted by aged priority, deadline, age — for
 * any mix of priorities, ages around the aging cap, deadlines, ties, ineligible tasks and aging
 * settings. Compared by sort key, so tasks that tie may come in either order.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { QUEUE_HEAD_REFERENCE, agedPriority, readQueueHead, type Aging } from './queue-head.ts';

interface Gen {
  priority: number;
  /** Minutes waited: several sit exactly on, or either side of, the cap of the aging settings used. */
  ageMin: number;
  deadlineMin: number | null;
  kind: 'eligible' | 'other_caps' | 'blocked' | 'assigned';
  /** Which of the agents' two capabilities the task needs (the queue head reads each set apart). */
  needs: 'first' | 'second' | 'both';
}

const genArb: fc.Arbitrary<Gen> = fc.record({
  priority: fc.constantFrom(1, 2, 5, 5, 8, 10),
  ageMin: fc.oneof(fc.constantFrom(0, 0, 1, 2.5, 4.99, 5, 5.01, 10, 30), fc.double({ min: 0, max: 40, noNaN: true })),
  deadlineMin: fc.option(fc.constantFrom(-5, 1, 1, 10, 60), { nil: null }),
  kind: fc.constantFrom('eligible', 'eligible', 'eligible', 'other_caps', 'blocked', 'assigned'),
  needs: fc.constantFrom('first', 'first', 'second', 'both'),
});

const agingArb: fc.Arbitrary<Aging> = fc.record({ perMinute: fc.constantFrom(0, 0.5, 1, 2), cap: fc.constantFrom(0, 5, 10) });

describe.each(engines())('queue head on $name', (engine) => {
  let t: TestDb;
  let run = 0;
  beforeAll(async () => { t = await engine.open(); });
  afterAll(async () => t?.dispose());

  it('agrees with sorting the whole queue', async () => {
    await fc.assert(fc.asyncProperty(fc.array(genArb, { minLength: 0, maxLength: 40 }), agingArb, fc.integer({ min: 1, max: 12 }), async (gens, aging, limit) => {
      const cap = `cap_qh_${++run}`;
      const cap2 = `cap2_qh_${run}`;
      const needs = { first: [cap], second: [cap2], both: [cap, cap2] };
      const type = `qh_${run}`;
      const ids = gens.map(() => randomUUID());
      await t.db.query(
        `INSERT INTO tasks (task_id, task_type, status, priority, required_capabilities, parameters, data_classification, timeout_seconds, max_retries, pending_deps, created_at, deadline)
         SELECT x.id, $1, x.status, x.priority, c.caps, '{}', 'internal', 60, 0, x.deps,
           now() - make_interval(secs => x.age * 60), now() + make_interval(secs => x.deadline * 60)
         FROM unnest($2::uuid[], $3::text[], $4::int[], $5::jsonb[], $6::int[], $7::float8[], $8::float8[]) AS x(id, status, priority, caps_json, deps, age, deadline)
         CROSS JOIN LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(x.caps_json)) AS caps) AS c(caps)`,
        [type, ids, gens.map((g) => (g.kind === 'assigned' ? 'assigned' : 'pending')), gens.map((g) => g.priority),
          gens.map((g) => JSON.stringify(g.kind === 'other_caps' ? [...needs[g.needs], 'elsewhere'] : needs[g.needs])), gens.map((g) => (g.kind === 'blocked' ? 1 : 0)),
          gens.map((g) => g.ageMin), gens.map((g) => g.deadlineMin)]);
      try {
        await t.db.transaction(async (q) => { // one transaction: one now() for both reads and the keys
          const got = await readQueueHead(q, [cap, cap2], limit, aging);
          const want = await readQueueHead(q, [cap, cap2], limit, aging, QUEUE_HEAD_REFERENCE);
          const { rows } = await q.query<{ task_id: string; k: string }>(
            `SELECT task_id, concat_ws('|', (${agedPriority('t', '$2', '$3')})::text, deadline::text, created_at::text) AS k
             FROM tasks t WHERE task_id = ANY($1::uuid[])`, [[...got, ...want].map((r) => r.task_id), aging.perMinute, aging.cap]);
          const key = new Map(rows.map((r) => [r.task_id, r.k]));
          expect(want.length).toBe(Math.min(limit, gens.filter((g) => g.kind === 'eligible').length));
          expect(got.map((r) => key.get(r.task_id))).toEqual(want.map((r) => key.get(r.task_id)));
          expect(new Set(got.map((r) => r.task_id)).size).toBe(got.length);
        });
      } finally {
        await t.db.query('DELETE FROM tasks WHERE task_type = $1', [type]);
      }
    }), { numRuns: engine.name === 'pglite' ? 60 : 120 });
  });
});
