/**
 * SQL for pipeline runs, their stages and templates. input_data, context and output pass
 * through the field codec (encrypted for phi, bound to table+column+row). No business rules:
 * status changes are written with the caller's guard (`WHERE status = ANY(...)`) and report
 * whether they applied, so that two engines racing on the same run cannot both apply one.
 */
import type { FieldCodec } from '../core/index.ts';
import type { Queryable } from '../store/index.ts';
import type { ErrorStrategy, PipelineStatus, StageStatus, TemplateSort } from '../contracts/pipelines.ts';
import type { PipelineTemplate, StageDefinition } from './pipeline-templates.ts';

export interface PipelineRow {
  pipeline_id: string;
  name: string;
  description: string;
  template: string;
  status: PipelineStatus;
  error_strategy: ErrorStrategy;
  priority: number;
  data_classification: string;
  input_data: string;
  context: string;
  patient_bidx: string | null;
  session_bidx: string | null;
  parameters: Record<string, unknown>;
  metadata: Record<string, unknown>;
  output: string | null;
  error: { code: string; message: string; stage?: string } | null;
  estimated_duration_s: number | null;
  created_by: string | null;
  created_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  updated_at: Date;
  /** Only from list/summary queries. */
  progress?: number;
}

export interface StageRow {
  pipeline_id: string;
  stage: string;
  position: number;
  name: string;
  task_type: string;
  depends_on: string[];
  status: StageStatus;
  task_id: string | null;
  previous_task_ids: string[];
  run_count: number;
  required_capabilities: string[] | null;
  timeout_seconds: number | null;
  max_retries: number | null;
  config: Record<string, unknown>;
  progress: number;
  error: { code: string; message: string; retryable?: boolean; details?: unknown } | null;
  started_at: Date | null;
  completed_at: Date | null;
  updated_at: Date;
  /** Joined from the stage's current task. */
  task_status: string | null;
  task_progress: number | null;
  task_dead_letter: boolean | null;
  task_error: { code: string; message: string; retryable: boolean; details?: unknown } | null;
  task_attempt: number | null;
  task_started_at: Date | null;
}

export interface NewPipeline {
  pipeline_id: string;
  name: string;
  description: string;
  template: string;
  status: PipelineStatus;
  error_strategy: ErrorStrategy;
  priority: number;
  data_classification: string;
  input_data: unknown;
  context: Record<string, unknown>;
  patient_bidx: string | null;
  session_bidx: string | null;
  parameters: Record<string, unknown>;
  metadata: Record<string, unknown>;
  estimated_duration_s: number | null;
  created_by: string;
}

export interface PipelineListFilter {
  status?: string;
  template?: string;
  patient_bidx?: string;
  session_bidx?: string;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Path ids are checked here so that lookups compare uuids (indexed) and junk is simply "not found". */
export function isUuid(id: string): boolean {
  return UUID_RE.test(id);
}

const RUN_COLS = `pipeline_id, name, description, template, status, error_strategy, priority, data_classification, input_data, context,
  patient_bidx, session_bidx, parameters, metadata, output, error, estimated_duration_s, created_by, created_at, started_at, completed_at, updated_at`;

const PROGRESS_SQL = `(SELECT COALESCE((count(*) FILTER (WHERE s.status = 'completed') + COALESCE(sum(t.progress) FILTER (WHERE s.status IN ('ready', 'running')), 0))::float8 / NULLIF(count(*), 0), 0)
   FROM pipeline_stages s LEFT JOIN tasks t ON t.task_id = s.task_id WHERE s.pipeline_id = p.pipeline_id)`;

export class PipelineRepository {
  constructor(private readonly codec: FieldCodec) {}

  private aad(id: string, column: string) {
    return { table: 'pipelines', column, rowId: id };
  }

  openInput(row: Pick<PipelineRow, 'pipeline_id' | 'input_data'>): unknown {
    return this.codec.open(row.input_data, this.aad(row.pipeline_id, 'input_data'));
  }

  openContext(row: Pick<PipelineRow, 'pipeline_id' | 'context'>): Record<string, unknown> {
    return this.codec.open<Record<string, unknown>>(row.context, this.aad(row.pipeline_id, 'context')) ?? {};
  }

  openOutput(row: Pick<PipelineRow, 'pipeline_id' | 'output'>): unknown {
    return row.output === null ? null : this.codec.open(row.output, this.aad(row.pipeline_id, 'output'));
  }

  // ---- runs ---------------------------------------------------------------------------------

  async insertRun(q: Queryable, p: NewPipeline): Promise<PipelineRow> {
    const { rows } = await q.query<PipelineRow>(
      `INSERT INTO pipelines (pipeline_id, name, description, template, status, error_strategy, priority, data_classification, input_data, context,
         patient_bidx, session_bidx, parameters, metadata, estimated_duration_s, created_by, started_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, CASE WHEN $5 = 'running' THEN now() END)
       RETURNING ${RUN_COLS}`,
      [p.pipeline_id, p.name, p.description, p.template, p.status, p.error_strategy, p.priority, p.data_classification,
        this.codec.seal(p.input_data, p.data_classification, this.aad(p.pipeline_id, 'input_data')),
        this.codec.seal(p.context, p.data_classification, this.aad(p.pipeline_id, 'context')),
        p.patient_bidx, p.session_bidx, JSON.stringify(p.parameters), JSON.stringify(p.metadata), p.estimated_duration_s, p.created_by],
    );
    return rows[0]!;
  }

  async insertStages(q: Queryable, pipelineId: string, stages: readonly StageDefinition[]): Promise<void> {
    await q.query(
      `INSERT INTO pipeline_stages (pipeline_id, stage, position, name, task_type, depends_on, status, required_capabilities, timeout_seconds, max_retries, config)
       SELECT $1, x.stage, x.position, x.name, x.task_type, ARRAY(SELECT jsonb_array_elements_text(x.deps)), 'pending',
         CASE WHEN x.caps IS NULL OR x.caps = 'null'::jsonb THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(x.caps)) END,
         x.timeout_seconds, x.max_retries, x.config
       FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::int[], $9::int[], $10::jsonb[])
         AS x(stage, position, name, task_type, deps, caps, timeout_seconds, max_retries, config)`,
      [pipelineId, stages.map((s) => s.stage), stages.map((_, i) => i), stages.map((s) => s.name), stages.map((s) => s.task_type),
        stages.map((s) => JSON.stringify(s.depends_on)), stages.map((s) => JSON.stringify(s.required_capabilities)),
        stages.map((s) => s.timeout_seconds), stages.map((s) => s.max_retries), stages.map((s) => JSON.stringify(s.config))],
    );
  }

  async get(q: Queryable, pipelineId: string, forUpdate = false): Promise<PipelineRow | null> {
    if (!isUuid(pipelineId)) return null;
    const { rows } = await q.query<PipelineRow>(
      `SELECT ${RUN_COLS}, ${PROGRESS_SQL} AS progress FROM pipelines p WHERE pipeline_id = $1::uuid ${forUpdate ? 'FOR UPDATE OF p' : ''}`, [pipelineId]);
    return rows[0] ?? null;
  }

  async list(q: Queryable, f: PipelineListFilter, sort: string, limit: number, offset: number): Promise<{ rows: PipelineRow[]; total: number }> {
    const conds: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, v: unknown) => { params.push(v); conds.push(sql.replace('?', `$${params.length}`)); };
    if (f.status) add('status = ?', f.status);
    if (f.template) add('template = ?', f.template);
    if (f.patient_bidx) add('patient_bidx = ?', f.patient_bidx);
    if (f.session_bidx) add('session_bidx = ?', f.session_bidx);
    const where = conds.length ? `WHERE ${conds.join(' AND ')}` : '';
    const [field, dir] = sort.split(':') as [string, string];
    const { rows } = await q.query<PipelineRow>(
      `SELECT ${RUN_COLS.replace('input_data, context,', "'' AS input_data, context,").replace('output,', 'NULL AS output,')}, ${PROGRESS_SQL} AS progress
       FROM pipelines p ${where} ORDER BY ${field} ${dir === 'asc' ? 'ASC' : 'DESC'} NULLS LAST, pipeline_id LIMIT ${limit} OFFSET ${offset}`,
      params,
    );
    const t = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM pipelines ${where}`, params);
    return { rows, total: t.rows[0]?.n ?? 0 };
  }

  /** Changes a run's status when it is in one of `from`; returns whether it applied. */
  async setStatus(q: Queryable, pipelineId: string, from: readonly PipelineStatus[], to: PipelineStatus, extra: { error?: unknown; output?: unknown; classification?: string; finished?: boolean; clearResult?: boolean } = {}): Promise<boolean> {
    const sets = ['status = $2', 'updated_at = now()'];
    const params: unknown[] = [pipelineId, to, [...from]];
    if (extra.error !== undefined) { params.push(extra.error === null ? null : JSON.stringify(extra.error)); sets.push(`error = $${params.length}`); }
    if (extra.output !== undefined) {
      params.push(extra.output === null ? null : this.codec.seal(extra.output, extra.classification ?? 'phi', this.aad(pipelineId, 'output')));
      sets.push(`output = $${params.length}`);
    }
    if (extra.finished) sets.push('completed_at = now()');
    if (extra.clearResult) sets.push('completed_at = NULL', 'output = NULL', 'error = NULL');
    if (to === 'running') sets.push('started_at = COALESCE(started_at, now())');
    const r = await q.query(`UPDATE pipelines SET ${sets.join(', ')} WHERE pipeline_id = $1 AND status = ANY($3::text[])`, params);
    return r.rowCount > 0;
  }

  // ---- stages -------------------------------------------------------------------------------

  async stages(q: Queryable, pipelineId: string): Promise<StageRow[]> {
    if (!isUuid(pipelineId)) return [];
    const { rows } = await q.query<StageRow>(
      `SELECT s.*, t.status AS task_status, t.progress AS task_progress, t.dead_letter AS task_dead_letter, t.error AS task_error,
         t.attempt AS task_attempt, t.started_at AS task_started_at
       FROM pipeline_stages s LEFT JOIN tasks t ON t.task_id = s.task_id
       WHERE s.pipeline_id = $1::uuid ORDER BY s.position`, [pipelineId]);
    return rows;
  }

  /** Applies a stage change when the stage is in one of `from`; returns whether it applied. */
  async updateStage(q: Queryable, pipelineId: string, stage: string, from: readonly StageStatus[], patch: {
    status: StageStatus; task_id?: string | null; error?: unknown; started?: 'now' | 'keep' | 'clear'; completed?: 'now' | 'clear'; progress?: number; bumpRun?: boolean; archiveTask?: boolean;
  }): Promise<boolean> {
    const sets = ['status = $4', 'updated_at = now()'];
    const params: unknown[] = [pipelineId, stage, [...from], patch.status];
    if (patch.archiveTask) sets.push('previous_task_ids = CASE WHEN task_id IS NULL THEN previous_task_ids ELSE previous_task_ids || task_id END');
    if (patch.task_id !== undefined) { params.push(patch.task_id); sets.push(`task_id = $${params.length}::uuid`); }
    if (patch.error !== undefined) { params.push(patch.error === null ? null : JSON.stringify(patch.error)); sets.push(`error = $${params.length}`); }
    if (patch.progress !== undefined) { params.push(patch.progress); sets.push(`progress = $${params.length}`); }
    if (patch.started === 'now') sets.push('started_at = COALESCE(started_at, now())');
    if (patch.started === 'clear') sets.push('started_at = NULL');
    if (patch.completed === 'now') sets.push('completed_at = now()');
    if (patch.completed === 'clear') sets.push('completed_at = NULL');
    if (patch.bumpRun) sets.push('run_count = run_count + 1');
    const r = await q.query(`UPDATE pipeline_stages SET ${sets.join(', ')} WHERE pipeline_id = $1 AND stage = $2 AND status = ANY($3::text[])`, params);
    return r.rowCount > 0;
  }

  /** A stage whose task an agent picked up: ready → running. */
  async markRunning(q: Queryable, taskId: string): Promise<{ pipeline_id: string; stage: string } | null> {
    const { rows } = await q.query<{ pipeline_id: string; stage: string }>(
      `UPDATE pipeline_stages SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now()
       WHERE task_id = $1::uuid AND status = 'ready' RETURNING pipeline_id, stage`, [taskId]);
    return rows[0] ?? null;
  }

  // ---- reconciliation -----------------------------------------------------------------------

  /**
   * Runs that may need advancing: a live stage whose task reached a final state (or was picked
   * up), or a running run with no live stage at all (its next tasks were never created).
   */
  async needingAttention(q: Queryable, limit: number): Promise<string[]> {
    const { rows } = await q.query<{ pipeline_id: string }>(
      `SELECT p.pipeline_id FROM pipelines p
       WHERE p.status IN ('running', 'paused', 'failed') AND (
         EXISTS (SELECT 1 FROM pipeline_stages s JOIN tasks t ON t.task_id = s.task_id
                 WHERE s.pipeline_id = p.pipeline_id AND s.status IN ('ready', 'running')
                   AND (t.status IN ('completed', 'cancelled') OR (t.status IN ('failed', 'timeout') AND t.dead_letter)
                        OR (s.status = 'ready' AND t.status IN ('assigned', 'running'))))
         OR (p.status = 'running' AND NOT EXISTS (SELECT 1 FROM pipeline_stages s WHERE s.pipeline_id = p.pipeline_id AND s.status IN ('ready', 'running'))))
       ORDER BY p.updated_at LIMIT ${limit}`);
    return rows.map((r) => r.pipeline_id);
  }

  /** Live tasks of cancelled runs (a crash between the cancel and the task cancellations). */
  async orphanTasks(q: Queryable, limit: number): Promise<string[]> {
    const { rows } = await q.query<{ task_id: string }>(
      `SELECT t.task_id FROM tasks t JOIN pipelines p ON p.pipeline_id = t.pipeline_id
       WHERE p.status = 'cancelled' AND t.status IN ('pending', 'assigned', 'running', 'retrying') LIMIT ${limit}`);
    return rows.map((r) => r.task_id);
  }

  /** Mean seconds from creation to completion per task type, over recent completed tasks. */
  async meanStageSeconds(q: Queryable, taskTypes: string[]): Promise<Map<string, number>> {
    if (!taskTypes.length) return new Map();
    const { rows } = await q.query<{ task_type: string; s: number }>(
      `SELECT task_type, avg(extract(epoch FROM (completed_at - created_at)))::float8 AS s FROM tasks
       WHERE status = 'completed' AND task_type = ANY($1::text[]) AND completed_at > now() - interval '1 day'
       GROUP BY task_type`, [taskTypes]);
    return new Map(rows.map((r) => [r.task_type, r.s]));
  }

  // ---- templates ----------------------------------------------------------------------------

  async upsertBuiltinTemplates(q: Queryable, templates: readonly PipelineTemplate[]): Promise<void> {
    for (const t of templates) {
      await q.query(
        `INSERT INTO pipeline_templates (name, description, stages, builtin, created_by) VALUES ($1, $2, $3, true, NULL)
         ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, stages = EXCLUDED.stages, builtin = true`,
        [t.name, t.description, JSON.stringify(t.stages)]);
    }
  }

  /** Inserts a custom template; false when the name is taken. */
  async insertTemplate(q: Queryable, t: { name: string; description: string; stages: StageDefinition[]; created_by: string }): Promise<PipelineTemplate | null> {
    const { rows } = await q.query<TemplateRow>(
      `INSERT INTO pipeline_templates (name, description, stages, builtin, created_by) VALUES ($1, $2, $3, false, $4)
       ON CONFLICT (name) DO NOTHING RETURNING *`, [t.name, t.description, JSON.stringify(t.stages), t.created_by]);
    return rows[0] ? toTemplate(rows[0]) : null;
  }

  async getTemplate(q: Queryable, name: string): Promise<PipelineTemplate | null> {
    const { rows } = await q.query<TemplateRow>('SELECT * FROM pipeline_templates WHERE name = $1', [name]);
    return rows[0] ? toTemplate(rows[0]) : null;
  }

  /** Templates in `sort` order (default: built-in first, then by name); names are unique, so every order is total. */
  async listTemplates(q: Queryable, sort: TemplateSort | undefined, limit: number, offset: number): Promise<{ rows: PipelineTemplate[]; total: number }> {
    const orderBy = sort === undefined ? 'builtin DESC, name' : TEMPLATE_ORDER_BY[sort];
    const { rows } = await q.query<TemplateRow>(`SELECT * FROM pipeline_templates ORDER BY ${orderBy} LIMIT $1 OFFSET $2`, [limit, offset]);
    const t = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM pipeline_templates');
    return { rows: rows.map(toTemplate), total: t.rows[0]?.n ?? 0 };
  }
}

const TEMPLATE_ORDER_BY: Record<TemplateSort, string> = {
  'name:asc': 'name',
  'name:desc': 'name DESC',
  'created_at:asc': 'created_at, name',
  'created_at:desc': 'created_at DESC, name DESC',
};

interface TemplateRow {
  name: string;
  description: string;
  stages: StageDefinition[];
  builtin: boolean;
  created_by: string | null;
  created_at: Date;
}

function toTemplate(r: TemplateRow): PipelineTemplate {
  return { name: r.name, description: r.description, stages: r.stages, builtin: r.builtin, created_by: r.created_by, created_at: r.created_at.toISOString() };
}
