/** Reading `EXPLAIN (FORMAT JSON)` output the same way on PostgreSQL (parsed by pg) and PGlite (text). */
import type { Queryable } from '../../src/store/index.ts';

export type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

/** The root plan node of an `EXPLAIN (FORMAT JSON …)` of `sql` (`explain`: the statement's head, e.g. `EXPLAIN (ANALYZE, FORMAT JSON)`). */
export async function planOf(q: Queryable, explain: string, sql: string, params?: unknown[]): Promise<PlanNode> {
  const { rows } = await q.query<{ 'QUERY PLAN': unknown }>(`${explain} ${sql}`, params);
  const raw = rows[0]!['QUERY PLAN'];
  return ((typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<{ Plan: PlanNode }>)[0]!.Plan;
}
