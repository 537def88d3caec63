/** Ready tasks (pending, no unfinished dependency) as migration 0011 indexes them, and a loose scan of their capability sets. */

/** Ready to run: the predicate of the `tasks_ready` indexes (migration 0011). */
export const READY = `status = 'pending' AND pending_deps = 0`;

/**
 * A recursive CTE `name(c)`: the distinct capability sets of ready tasks, one index probe each,
 * ending in a NULL row. Goes in a `WITH RECURSIVE` list.
 */
export const readySets = (name: string) => `${name}(c) AS (
    (SELECT required_capabilities FROM tasks WHERE ${READY} ORDER BY required_capabilities LIMIT 1)
    UNION ALL
    SELECT (SELECT required_capabilities FROM tasks WHERE ${READY} AND required_capabilities > ${name}.c ORDER BY required_capabilities LIMIT 1)
    FROM ${name} WHERE ${name}.c IS NOT NULL
  )`;
