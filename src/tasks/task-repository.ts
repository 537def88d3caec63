/**
 * SQL for tasks and their history. Parameters and results pass through the field codec
 * (encrypted for phi/restricted, bound to table+column+row). No business rules here.
 */
import { isUuid, type FieldCodec } from '../core/index.ts';
import type { Queryable } from '../store/index.ts';
import { DATA_CLASSIFICATIONS, pendingAuditSelect, type PendingAudit } from '../security/index.ts';
import type { TaskStatus } from '../contracts/tasks.ts';
import type { Role } from '../auth/index.ts';
import { readySets } from './ready-tasks.ts';

export interface TaskRow {
  task_id: string;
  task_type: string;
  status: TaskStatus;
  priority: number;
  required_capabilities: string[];
  parameters: string;
  result: string | null;
  error: { code: string; message: string; retryable: boolean; details?: unknown } | null;
  data_classification: string;
  metadata: Record<string, unknown>;
  pipeline_id: string | null;
  stage: string | null;
  deadline: Date | null;
  timeout_seconds: number;
  max_retries: number;
  dependencies: string[];
  pending_deps: number;
  strategy: string | null;
  /** Deliveries so far: +1 on every lease, the fencing token (SPEC §6). */
  attempt: number;
  /** Failures and timeouts recorded so far (migration 0016): what max_retries limits, not `attempt`. */
  failures: number;
  assigned_agent: string | null;
  lease_expires_at: Date | null;
  progress: number;
  progress_message: string | null;
  dead_letter: boolean;
  retry_at: Date | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  assigned_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
}

export interface NewTask {
  task_id: string;
  task_type: string;
  priority: number;
  required_capabilities: string[];
  parameters: unknown;
  data_classification: string;
  metadata: Record<string, unknown>;
  pipeline_id: string | null;
  stage: string | null;
  deadline: string | null;
  timeout_seconds: number;
  max_retries: number;
  dependencies: string[];
  strategy: string | null;
  created_by: string;
}

/** Agents picked for new tasks before their insert (`insertMany`'s `assign`). */
export interface TaskAssignment {
  agentOf(taskId: string): string | null;
  capabilitiesOf(taskId: string): string[] | null;
  /** Told each task's parameters as the insert stores them (sealed), so they are not sealed twice. */
  stored?(taskId: string, parameters: string): void;
}

/** SQL: the task (alias `t`) can never complete — cancelled, or failed/timed out with dead_letter — so its dependents never run. */
export const DOOMED = (t: string) => `(${t}.status = 'cancelled' OR (${t}.status IN ('failed', 'timeout') AND ${t}.dead_letter))`;

export const TASK_COLS = `task_id, task_type, status, priority, required_capabilities, parameters, result, error, data_classification, metadata,
  pipeline_id, stage, deadline, timeout_seconds, max_retries, dependencies, pending_deps, strategy, attempt, failures, assigned_agent, lease_expires_at,
  progress, progress_message, dead_letter, retry_at, created_by, created_at, updated_at, assigned_at, started_at, completed_at`;

export const SUMMARY_COLS = TASK_COLS.replace('parameters, result, ', '');

export interface HistoryEntry {
  from_status: string | null;
  to_status: string;
  attempt: number;
  agent_id: string | null;
  reason: string | null;
  at: Date;
}

/** `getManyWithHistory`'s history columns: null when the task has no history entries. */
interface HistoryArrays {
  h_from: Array<string | null> | null;
  h_to: string[] | null;
  h_attempt: number[] | null;
  h_agent: Array<string | null> | null;
  h_reason: Array<string | null> | null;
  h_at: Date[] | null;
}

/**
 * Detail reads to audit with the statement that reads (`getManyWithHistory`): each read of a
 * task the reader may see gets the entry `sql` writes (`PhiAccessLog.readsSql`, given the
 * source relation and the statement's parameter binder); reads of tasks not found or not
 * visible to their reader get none (they disclose nothing).
 */
export interface AuditedReads {
  reads: Array<{ task_id: string; audit_id: string; actor: unknown; request_id: string | null; visibleTo: NonNullable<TaskListFilter['visibleTo']> | null }>;
  sql: (source: string, param: (value: unknown) => string) => string;
}

export interface TaskListFilter {
  status?: string;
  task_type?: string;
  pipeline_id?: string;
  agent_id?: string;
  dead_letter?: boolean;
  /** Worker principals see only tasks assigned to them or created by them. */
  visibleTo?: { agentId: string | null; creator: string };
}

export class TaskRepository {
  constructor(private readonly codec: FieldCodec) {}

  sealParameters(taskId: string, classification: string, value: unknown): string {
    return this.codec.seal(value, classification, { table: 'tasks', column: 'parameters', rowId: taskId });
  }

  openParameters<T = Record<string, unknown>>(row: Pick<TaskRow, 'task_id' | 'parameters'>): T {
    return this.codec.open<T>(row.parameters, { table: 'tasks', column: 'parameters', rowId: row.task_id });
  }

  sealResult(taskId: string, classification: string, value: unknown): string {
    return this.codec.seal(value, classification, { table: 'tasks', column: 'result', rowId: taskId });
  }

  openResult<T = unknown>(row: Pick<TaskRow, 'task_id' | 'result'>): T | null {
    return row.result === null ? null : this.codec.open<T>(row.result, { table: 'tasks', column: 'result', rowId: row.task_id });
  }

  /**
   * Inserts tasks with their `created` history entries — and, given `audit`, the audit entries
   * of the creation — in one statement (atomic on its own: no transaction needed around it);
   * pending_deps counts unfinished dependencies.
   *
   * `assign` names an agent per task (null: none) for assignment at insert: such a task is
   * inserted already leased to it (attempt 1, history `created` then `assigned`) — unless a
   * committed pending task that agent could serve is waiting, which keeps the queue's order: the
   * task is then inserted pending like the others. `assign` gives each agent's capabilities.
   *
   * With `queueAhead` (a limit), each row also carries how many pending tasks committed before
   * this statement rank ahead of it or level with it (see `queuePositions`), counted up to the
   * limit (a walk of at most that many index entries; see QueueDepth): counted once per
   * distinct priority of the batch's tasks left pending (all of them are older, so level means
   * ahead; a task leased at insert is not queued).
   */
  async insertMany(q: Queryable, tasks: NewTask[], opts: { queueAhead?: number; audit?: PendingAudit | null; assign?: TaskAssignment | null } = {}): Promise<Array<TaskRow & { queue_ahead?: number }>> {
    if (tasks.length === 0) return [];
    const col = <K extends keyof NewTask>(k: K) => tasks.map((t) => t[k]);
    const audit = opts.audit?.audit_ids.length ? opts.audit : null;
    const assign = opts.assign;
    const params: unknown[] = [
      col('task_id'), col('task_type'), col('priority'), tasks.map((t) => JSON.stringify(t.required_capabilities)),
      tasks.map((t) => {
        const sealed = this.sealParameters(t.task_id, t.data_classification, t.parameters);
        assign?.stored?.(t.task_id, sealed);
        return sealed;
      }), col('data_classification'),
      tasks.map((t) => JSON.stringify(t.metadata)), col('pipeline_id'), col('stage'), col('deadline'), col('timeout_seconds'), col('max_retries'),
      tasks.map((t) => JSON.stringify(t.dependencies)), col('strategy'), col('created_by'),
    ];
    const param = (v: unknown) => `$${params.push(v)}`;
    // Assigned at insert when an agent was picked and nothing it could serve is already waiting.
    // Checked once per distinct capability set of the picked agents against the distinct
    // capability sets of ready tasks (a loose index scan, however many tasks wait).
    const free = assign
      ? `, ${readySets('waiting')}, free AS MATERIALIZED (
         SELECT k.agent_caps FROM (SELECT DISTINCT agent_caps FROM x WHERE agent IS NOT NULL) AS k
         WHERE NOT EXISTS (SELECT 1 FROM waiting w WHERE w.c <@ ARRAY(SELECT jsonb_array_elements_text(k.agent_caps)))
       )`
      : '';
    const leased = assign ? 'x.agent IS NOT NULL AND x.agent_caps IN (SELECT agent_caps FROM free)' : 'false';
    const agentCols = assign ? `, ${param(tasks.map((t) => assign.agentOf(t.task_id)))}::text[], ${param(tasks.map((t) => JSON.stringify(assign.capabilitiesOf(t.task_id))))}::jsonb[]` : '';
    const auditCte = audit ? `, au AS (INSERT INTO audit_pending (audit_id, body) ${pendingAuditSelect(params.push(audit.audit_ids), params.push(audit.bodies))})` : '';
    const { rows } = await q.query<TaskRow>(
      `WITH${assign ? ' RECURSIVE' : ''} x AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::jsonb[], $5::text[], $6::text[], $7::jsonb[], $8::uuid[], $9::text[], $10::timestamptz[],
                              $11::int[], $12::int[], $13::jsonb[], $14::text[], $15::text[]${agentCols})
           AS x(task_id, task_type, priority, caps, parameters, classification, metadata, pipeline_id, stage, deadline, timeout_seconds, max_retries, deps, strategy, created_by${assign ? ', agent, agent_caps' : ''})
       )${free}, y AS MATERIALIZED (SELECT x.*, ${leased} AS leased FROM x), ins AS (
         INSERT INTO tasks (task_id, task_type, status, priority, required_capabilities, parameters, data_classification, metadata, pipeline_id, stage,
           deadline, timeout_seconds, max_retries, dependencies, pending_deps, strategy, created_by, attempt, assigned_agent, assigned_at, lease_expires_at)
         SELECT x.task_id, x.task_type, CASE WHEN x.leased THEN 'assigned' ELSE 'pending' END, x.priority, ARRAY(SELECT jsonb_array_elements_text(x.caps)), x.parameters,
           x.classification, x.metadata, x.pipeline_id, x.stage, x.deadline, x.timeout_seconds, x.max_retries, ARRAY(SELECT jsonb_array_elements_text(x.deps))::uuid[],
           CASE WHEN jsonb_array_length(x.deps) = 0 THEN 0 ELSE
             (SELECT count(*) FROM tasks d WHERE d.task_id = ANY(ARRAY(SELECT jsonb_array_elements_text(x.deps))::uuid[]) AND d.status <> 'completed')::int END,
           x.strategy, x.created_by, CASE WHEN x.leased THEN 1 ELSE 0 END, CASE WHEN x.leased THEN ${assign ? 'x.agent' : 'NULL'} END,
           CASE WHEN x.leased THEN now() END, CASE WHEN x.leased THEN now() + make_interval(secs => x.timeout_seconds) END
         FROM y AS x
         RETURNING ${SUMMARY_COLS}
       ), ev AS (
         INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id, reason)
         SELECT task_id, NULL, 'pending', 0, NULL, 'created' FROM ins
         UNION ALL SELECT task_id, 'pending', 'assigned', attempt, assigned_agent, NULL FROM ins WHERE status = 'assigned'
       )${auditCte}${opts.queueAhead ? `, ahead AS MATERIALIZED (
         SELECT d.priority, (SELECT count(*)::int FROM (SELECT FROM tasks p WHERE p.status = 'pending' AND p.priority >= d.priority LIMIT ${param(opts.queueAhead)}::int) AS c) AS n
         FROM (SELECT DISTINCT priority FROM y WHERE NOT y.leased) AS d
       )
       SELECT ins.*, (SELECT a.n FROM ahead a WHERE a.priority = ins.priority) AS queue_ahead FROM ins` : `
       SELECT * FROM ins`}`,
      params,
    );
    return rows;
  }

  async get(q: Queryable, taskId: string, forUpdate = false): Promise<TaskRow | null> {
    if (!isUuid(taskId)) return null;
    const { rows } = await q.query<TaskRow>(`SELECT ${TASK_COLS} FROM tasks WHERE task_id = $1::uuid ${forUpdate ? 'FOR UPDATE' : ''}`, [taskId]);
    return rows[0] ?? null;
  }

  /**
   * What decides whether an agent reporting on a task it does not hold may know of the task
   * (TaskService.knownTo): who created the task, the agent's stored role (null: no such agent),
   * and whether `attempt` was a lease of this agent (a `pending → assigned` entry naming both;
   * false for a null attempt). Null when there is no such task.
   */
  async reporterStanding(q: Queryable, taskId: string, agentId: string, attempt: number | null): Promise<{ created_by: string | null; role: Role | null; held: boolean } | null> {
    if (!isUuid(taskId)) return null;
    const { rows } = await q.query<{ created_by: string | null; role: Role | null; held: boolean }>(
      `SELECT t.created_by, (SELECT a.role FROM agents a WHERE a.agent_id = $2 AND a.deleted_at IS NULL) AS role,
         EXISTS (SELECT 1 FROM task_events e WHERE e.task_id = t.task_id AND e.to_status = 'assigned' AND e.agent_id = $2 AND e.attempt = $3::int) AS held
       FROM tasks t WHERE t.task_id = $1::uuid`, [taskId, agentId, attempt]);
    return rows[0] ?? null;
  }

  /** The status of each of `ids` that exists, and whether it can never complete (`doomed`: DOOMED). */
  async dependencyStates(q: Queryable, ids: string[]): Promise<Array<{ task_id: string; status: TaskStatus; doomed: boolean }>> {
    if (!ids.length) return [];
    const { rows } = await q.query<{ task_id: string; status: TaskStatus; doomed: boolean }>(
      `SELECT task_id, status, ${DOOMED('tasks')} AS doomed FROM tasks WHERE task_id = ANY($1::uuid[])`, [ids]);
    return rows;
  }

  async existing(q: Queryable, ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const { rows } = await q.query<{ task_id: string }>('SELECT task_id FROM tasks WHERE task_id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((r) => r.task_id));
  }

  async list(q: Queryable, f: TaskListFilter, sort: string, limit: number, offset: number): Promise<{ rows: TaskRow[]; total: number }> {
    const conds: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => { params.push(v); conds.push(sql.replace('?', `$${params.length}`)); };
    if (f.status) add('status = ?', f.status);
    if (f.task_type) add('task_type = ?', f.task_type);
    if (f.pipeline_id) add('pipeline_id = ?::uuid', f.pipeline_id);
    if (f.agent_id) add('assigned_agent = ?', f.agent_id);
    if (f.dead_letter !== undefined) add('dead_letter = ?', f.dead_letter);
    if (f.visibleTo) {
      params.push(f.visibleTo.agentId, f.visibleTo.creator);
      conds.push(`(assigned_agent = $${params.length - 1} OR created_by = $${params.length})`);
    }
    const where = conds.length ? `WHERE ${conds.join(' AND ')}` : '';
    const [field, dir] = sort.split(':') as [string, string];
    const { rows } = await q.query<TaskRow>(
      `SELECT ${SUMMARY_COLS}, NULL AS parameters, NULL AS result FROM tasks ${where} ORDER BY ${field} ${dir === 'asc' ? 'ASC' : 'DESC'} NULLS LAST, task_id LIMIT ${limit} OFFSET ${offset}`,
      params,
    );
    const t = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks ${where}`, params);
    return { rows, total: t.rows[0]?.n ?? 0 };
  }

  /**
   * Tasks and their histories in one statement (one round trip for a group of detail reads, the
   * REST read route under load), by id; ids not found are absent. Each history comes as parallel
   * arrays in event order, so every value keeps its type (timestamps as Dates) as it would from
   * its own rows.
   */
  async getManyWithHistory(q: Queryable, taskIds: string[], audit?: AuditedReads): Promise<Map<string, { row: TaskRow; history: HistoryEntry[] }>> {
    const ids = taskIds.filter(isUuid);
    const out = new Map<string, { row: TaskRow; history: HistoryEntry[] }>();
    if (!ids.length) return out;
    const params: unknown[] = [ids];
    const reads = audit?.reads.filter((r) => isUuid(r.task_id)) ?? [];
    const select = `SELECT ${TASK_COLS}, h.* FROM tasks t CROSS JOIN LATERAL (
         SELECT array_agg(from_status ORDER BY event_id) AS h_from, array_agg(to_status ORDER BY event_id) AS h_to,
           array_agg(attempt ORDER BY event_id) AS h_attempt, array_agg(agent_id ORDER BY event_id) AS h_agent,
           array_agg(reason ORDER BY event_id) AS h_reason, array_agg(at ORDER BY event_id) AS h_at
         FROM task_events e WHERE e.task_id = t.task_id) AS h
       WHERE t.task_id = ANY($1::uuid[])`;
    let sql = select;
    if (audit && reads.length) {
      // One entry per read of a task the reader may see (a worker: assigned to it or created by it).
      const param = (v: unknown) => `$${params.push(v)}`;
      const source = `(SELECT r.audit_id, r.actor, r.request_id, t.task_id::text AS resource_id,
          CASE WHEN t.result IS NULL THEN '["parameters"]'::jsonb ELSE '["parameters","result"]'::jsonb END AS fields,
          CASE WHEN t.data_classification = ANY(${param(DATA_CLASSIFICATIONS)}::text[]) THEN t.data_classification ELSE 'phi' END AS data_classification
        FROM jsonb_to_recordset(${param(JSON.stringify(reads.map((r) => ({ task_id: r.task_id, audit_id: r.audit_id, actor: r.actor, request_id: r.request_id, worker: r.visibleTo !== null, agent: r.visibleTo?.agentId ?? null, creator: r.visibleTo?.creator ?? null }))))}::jsonb)
          AS r(task_id uuid, audit_id uuid, actor jsonb, request_id text, worker boolean, agent text, creator text)
        JOIN t ON t.task_id = r.task_id
        WHERE NOT r.worker OR t.assigned_agent = r.agent OR t.created_by = r.creator)`;
      sql = `WITH t AS MATERIALIZED (${select}), a AS (${audit.sql(source, param)}) SELECT * FROM t`;
    }
    const { rows } = await q.query<TaskRow & HistoryArrays>(sql, params);
    for (const { h_from, h_to, h_attempt, h_agent, h_reason, h_at, ...row } of rows) {
      const history = (h_to ?? []).map((to, i) => ({ from_status: h_from![i] ?? null, to_status: to, attempt: h_attempt![i]!, agent_id: h_agent![i] ?? null, reason: h_reason![i] ?? null, at: h_at![i]! }));
      out.set(row.task_id, { row, history });
    }
    return out;
  }

  async recordEvents(q: Queryable, events: Array<{ task_id: string; from: string | null; to: string; attempt: number; agent_id: string | null; reason: string | null }>): Promise<void> {
    if (!events.length) return;
    await q.query(
      `INSERT INTO task_events (task_id, from_status, to_status, attempt, agent_id, reason)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])`,
      [events.map((e) => e.task_id), events.map((e) => e.from), events.map((e) => e.to), events.map((e) => e.attempt), events.map((e) => e.agent_id), events.map((e) => e.reason)],
    );
  }

  /**
   * Queue positions of rows inserted together with `queueAhead`: the pending tasks ahead or
   * level committed before, plus those of the same insert ranking ahead or level (itself
   * included, so the next to run is 1) — what `queuePosition` reads once they are committed.
   */
  static queuePositions(rows: Array<Pick<TaskRow, 'priority'> & { queue_ahead?: number }>): number[] {
    return rows.map((r) => (r.queue_ahead ?? 0) + rows.filter((o) => o.priority >= r.priority).length);
  }

  /**
   * A pending task's position (1 = next), by priority then age, counted up to `limit`. Compared
   * with the stored timestamp in the statement: the row's `created_at` as JavaScript reads it
   * is cut to milliseconds, and would leave the task itself out.
   */
  async queuePosition(q: Queryable, taskId: string, limit: number): Promise<number> {
    const { rows } = await q.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT FROM tasks p, (SELECT priority, created_at FROM tasks WHERE task_id = $1::uuid) AS me
         WHERE p.status = 'pending' AND (p.priority > me.priority OR (p.priority = me.priority AND p.created_at <= me.created_at)) LIMIT $2::int
       ) AS c`,
      [taskId, limit],
    );
    return rows[0]?.n ?? 1;
  }

  /** Pending tasks per priority (one walk of the pending index). */
  async pendingByPriority(q: Queryable): Promise<Array<{ priority: number; n: number }>> {
    const { rows } = await q.query<{ priority: number; n: number }>(`SELECT priority, count(*)::int AS n FROM tasks WHERE status = 'pending' GROUP BY priority`);
    return rows;
  }
}
