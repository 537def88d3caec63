/**
 * Ready tasks (pending, no unfinished dependency) as migration 0011 indexes them: by a 64-bit
 * hash of their capability set first (the set itself can be too large for a btree entry), then
 * priority and age. Statements find the sets waiting with a loose index scan — one probe per set
 * (or per set and priority level), reading the set's capabilities from its first row — so tasks
 * of sets no agent here covers are never read. Two different sets sharing a hash would be read
 * as one (the first row's capabilities deciding for both); every row delivered is still checked
 * against the agents' capabilities, so a task is never handed to an agent that cannot run it.
 */

/** Ready to run: the predicate of the `tasks_ready` indexes. */
export const READY = `status = 'pending' AND pending_deps = 0`;

/** The indexes' leading key. */
export const CAPS_KEY = 'hash_array_extended(required_capabilities, 0)';

/**
 * A recursive CTE `name(k, c)`: each capability set of ready tasks (key `k`, capabilities `c`),
 * one index probe each. Goes in a `WITH RECURSIVE` list.
 */
export const readySets = (name: string) => `${name}(k, c) AS (
    (SELECT ${CAPS_KEY}, required_capabilities FROM tasks WHERE ${READY} ORDER BY ${CAPS_KEY} LIMIT 1)
    UNION ALL
    SELECT n.k, n.c FROM ${name} CROSS JOIN LATERAL (
      SELECT ${CAPS_KEY} AS k, required_capabilities AS c FROM tasks WHERE ${READY} AND ${CAPS_KEY} > ${name}.k ORDER BY ${CAPS_KEY} LIMIT 1
    ) AS n
  )`;
