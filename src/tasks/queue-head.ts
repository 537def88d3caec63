/**
 * The head of the queue: the first eligible pending tasks in dispatch order (SPEC §6: highest
 * priority first, then earliest deadline, then oldest, with aging so that low priority cannot
 * starve). Order: `priority + LEAST(minutes waited × rate, cap)` descending, then deadline
 * (nulls last), then created_at.
 *
 * Sorting every pending task by that expression costs O(backlog) per dispatch round (with
 * 20,000 tasks queued, 5–8 ms a round), and so does filtering the queue by capability row by
 * row when the tasks ahead are ones no agent here can serve (50,000 of them: 15 ms a round).
 * Instead (ready-tasks.ts) the (capability set, priority level) pairs of ready tasks are found
 * with a loose index scan (one probe per pair), and for each pair whose set the agents cover,
 * three index scans of at most `limit` rows each give every candidate, because within a set and
 * level the order is an index order:
 * - tasks that waited long enough to reach the cap all have the same effective priority, so
 *   they are ordered by (deadline, created_at): those with a deadline come first, walked by
 *   `tasks_ready_deadline` (which holds only tasks with one); those without are a range of
 *   `tasks_ready` (by created_at, skipping the few with a deadline);
 * - younger tasks gain priority with age, strictly, so they are ordered by (created_at,
 *   deadline) — a range of `tasks_ready`.
 * The final order is then computed over those few candidates only. `readySets` (ready-tasks.ts)
 * is the same kind of loose scan for statements that only ask whether anything an agent covers
 * is waiting.
 */
import type { Queryable } from '../store/index.ts';
import type { TaskRow } from './task-repository.ts';
import { CAPS_KEY, READY } from './ready-tasks.ts';

export interface Aging {
  /** Priority points gained per minute of waiting. */
  perMinute: number;
  /** The most points aging adds. */
  cap: number;
}

export type QueueHeadRow = Pick<TaskRow, 'task_id' | 'required_capabilities' | 'strategy'>;

/**
 * A task's aged priority; `t` is the tasks alias, `rate`/`cap` the placeholders of the aging
 * settings. In float8 throughout, so that every query ranks alike (numeric and float8 arithmetic
 * disagree in the 17th digit).
 */
export const agedPriority = (t: string, rate: string, cap: string) =>
  `${t}.priority + LEAST(extract(epoch FROM (now() - ${t}.created_at))::float8 / 60 * ${rate}::float8, ${cap}::float8)`;

/** The dispatch order of SPEC §6 ($3/$4: the aging rate and cap). */
const ORDER = (t: string) => `${agedPriority(t, '$3', '$4')} DESC, ${t}.deadline ASC NULLS LAST, ${t}.created_at`;

const IN_LEVEL = `${READY} AND ${CAPS_KEY} = lv.k AND priority = lv.p AND required_capabilities <@ $1::text[]`;
const CANDIDATE_COLS = 'task_id, required_capabilities, strategy, priority, deadline, created_at';

const QUEUE_HEAD = `WITH RECURSIVE lv(k, p, c) AS (
    -- Every (capability set, priority level) of ready tasks, in index order: one probe each,
    -- with the set's capabilities from its first row.
    (SELECT ${CAPS_KEY}, priority, required_capabilities FROM tasks WHERE ${READY} ORDER BY ${CAPS_KEY}, priority LIMIT 1)
    UNION ALL
    SELECT n.k, n.p, n.c FROM lv CROSS JOIN LATERAL (
      SELECT ${CAPS_KEY} AS k, priority AS p, required_capabilities AS c FROM tasks
      WHERE ${READY} AND (${CAPS_KEY}, priority) > (lv.k, lv.p) ORDER BY ${CAPS_KEY}, priority LIMIT 1
    ) AS n
  ), cut AS MATERIALIZED (
    -- Created at or before this, a task has reached the aging cap (no aging: every task has).
    SELECT CASE WHEN $3::float8 > 0 THEN now() - make_interval(secs => $4::float8 / $3::float8 * 60) ELSE 'infinity'::timestamptz END AS at
  )
  SELECT c.task_id, c.required_capabilities, c.strategy FROM lv CROSS JOIN cut CROSS JOIN LATERAL (
    -- At the cap, with a deadline: by deadline (tasks with deadlines are walked, not the others).
    (SELECT ${CANDIDATE_COLS} FROM tasks
     WHERE ${IN_LEVEL} AND deadline IS NOT NULL AND created_at <= cut.at ORDER BY deadline, created_at LIMIT $2)
    UNION ALL
    -- At the cap, without one: by age, a range of the index.
    (SELECT ${CANDIDATE_COLS} FROM tasks
     WHERE ${IN_LEVEL} AND deadline IS NULL AND created_at <= cut.at ORDER BY created_at LIMIT $2)
    UNION ALL
    -- Below the cap: by age, a range of the index.
    (SELECT ${CANDIDATE_COLS} FROM tasks
     WHERE ${IN_LEVEL} AND created_at > cut.at ORDER BY created_at, deadline ASC NULLS LAST LIMIT $2)
  ) AS c
  WHERE lv.c <@ $1::text[]
  ORDER BY ${ORDER('c')}
  LIMIT $2`;

/** The same rows by sorting the whole queue: the definition QUEUE_HEAD must agree with (tests). */
export const QUEUE_HEAD_REFERENCE = `SELECT t.task_id, t.required_capabilities, t.strategy FROM tasks t
  WHERE t.status = 'pending' AND t.pending_deps = 0 AND t.required_capabilities <@ $1::text[]
  ORDER BY ${ORDER('t')} LIMIT $2`;

/** The first `limit` eligible pending tasks needing only capabilities in `caps`, in dispatch order. */
export async function readQueueHead(q: Queryable, caps: string[], limit: number, aging: Aging, sql = QUEUE_HEAD): Promise<QueueHeadRow[]> {
  return (await q.query<QueueHeadRow>(sql, [caps, limit, aging.perMinute, aging.cap])).rows;
}
