/**
 * How the batched statements over task rows (leases, accepts, results) pick and lock them.
 */

/**
 * The one order in which statements that lock several task rows lock them: ascending task id,
 * as PostgreSQL orders `uuid` (byte order, which is the order of the lower-case hex text).
 *
 * Batched statements look each task up by primary key, one input row at a time, and lock the
 * row inside that lookup (`CROSS JOIN LATERAL (... LIMIT 1 FOR UPDATE)`), so PostgreSQL takes
 * the locks in the order of the input arrays — an `ORDER BY ... FOR UPDATE` around the lookup
 * would not reorder them. Two batches holding overlapping tasks in opposite orders (an agent's
 * accepts and its results racing) would deadlock; sorted the same way, one waits for the other.
 * A task named more than once is kept once, at its first mention (a statement touches a row once).
 */
export function inLockOrder<T>(items: readonly T[], taskId: (item: T) => string): T[] {
  const first = new Map<string, T>();
  for (const item of items) {
    const key = taskId(item).toLowerCase();
    if (!first.has(key)) first.set(key, item);
  }
  return [...first].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, item]) => item);
}

/**
 * Each item's row from its batch's statement, matched by task id at the first mention of a task
 * only: the statement touched each row once (`inLockOrder`), so a repeat within the batch gets
 * undefined and is answered apart.
 */
export function rowsByFirstMention<I, R extends { task_id: string }>(items: readonly I[], taskId: (item: I) => string, rows: readonly R[]): Array<R | undefined> {
  const byId = new Map(rows.map((r) => [r.task_id, r]));
  const seen = new Set<string>();
  return items.map((item) => {
    const id = taskId(item);
    if (seen.has(id)) return undefined;
    seen.add(id);
    return byId.get(id);
  });
}

/**
 * The join condition of a batch's `UPDATE tasks t ... FROM cur` (`cur`: the locked rows, with a
 * `task_id` column). The join alone let the planner hash-join `cur` against a sequential scan of
 * the whole table — every batch read every task (EXPLAIN ANALYZE: 10,000 rows scanned to update
 * 200). The array of ids makes the rows to update an index scan of the primary key.
 */
export const UPDATE_LOCKED_ROWS = 't.task_id = cur.task_id AND t.task_id = ANY(ARRAY(SELECT task_id FROM cur))';

/**
 * A condition on the rows a lookup reaches through its own index (the primary key, or the
 * dependency index of the tasks waiting on a result), written so that no other index can serve
 * the lookup. Written plainly, the condition implies the predicate of a partial index (an
 * agent's live tasks, ready or pending tasks), and a plan made while the table was small —
 * a prepared statement's generic plan (the pool always uses those: store/pg-db.ts), kept until
 * the table's statistics change — walks that index instead:
 * every live task of the agent, or every ready task, for each row looked up. The planner does
 * not look inside a CASE. Rows failing it are neither returned nor locked, as in a plain WHERE.
 */
export const onLookedUpRow = (condition: string) => `(CASE WHEN ${condition} THEN true ELSE false END)`;
