/**
 * Pipeline use cases for the transports (SPEC §7): reading runs (masked for callers without
 * `phi:read`), their progress and exported output, templates; state changes go to the engine.
 */
import { ConflictError, NotFoundError, ValidationError } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import { hasPermission, principalKey, type Principal } from '../auth/index.ts';
import { DecryptionError, actorOf, maskValue, type AuditContext, type PhiAccessLog } from '../security/index.ts';
import type { CreatePipelineInput, CreateTemplateInput, ListPipelinesInput, OutputFormat, TemplateSort } from '../contracts/pipelines.ts';
import { BUILTIN_TEMPLATES, validateStages, type PipelineTemplate } from './pipeline-templates.ts';
import type { PipelineEngine, CreatedPipeline } from './pipeline-engine.ts';
import type { PipelineRepository, PipelineRow } from './pipeline-repository.ts';
import { currentStage, detailView, estimatedCompletion, runProgress, stageView, summaryView, type PipelineDetail, type PipelineSummary, type StageView } from './pipeline-view.ts';

export interface PipelineProgress {
  pipeline_id: string;
  status: string;
  progress: number;
  current_stage: string | null;
  completed_stages: number;
  total_stages: number;
  stages: Array<Pick<StageView, 'stage' | 'status' | 'progress'>>;
  estimated_completion: string | null;
}

export interface PipelineOutput {
  body: string;
  content_type: string;
  filename: string;
}

const CONTENT_TYPES: Record<OutputFormat, string> = { json: 'application/json', jsonl: 'application/x-ndjson', csv: 'text/csv' };

export class PipelineService {
  constructor(
    private readonly db: Db,
    private readonly repo: PipelineRepository,
    readonly engine: PipelineEngine,
    private readonly blindIndex?: (purpose: 'patient_id' | 'session_id', value: string) => string,
  ) {}

  /** PHI-access log for pipeline reads (SPEC §9 bulk-read rule), the one task reads use (compose sets it). */
  phiAudit: PhiAccessLog | null = null;

  /**
   * Counts an audited read of a run (its context, output or export) towards the bulk-read
   * breach rule — one PHI record per read, as a task read — when the caller saw it unmasked
   * (masked reads are audited but disclose nothing). The caller does not wait.
   */
  noteRead(ctx: AuditContext, viewer: Principal): void {
    this.phiAudit?.countRead(ctx, { classification: 'phi', unmasked: hasPermission(viewer.role, 'phi:read') });
  }

  /** Starts a run (PipelineEngine.create); `inTx` runs in its transaction (the creation's audit entry). */
  create(input: CreatePipelineInput, creator: Principal, inTx?: (q: Queryable, pipelineId: string) => Promise<void>): Promise<CreatedPipeline> {
    return this.engine.create(input, creator, inTx);
  }

  private async row(pipelineId: string): Promise<PipelineRow> {
    const row = await this.repo.get(this.db, pipelineId);
    if (!row) throw new NotFoundError('PIPELINE_NOT_FOUND');
    return row;
  }

  /**
   * Outputs are phi (SPEC §9), the built-in templates' too: their redaction of names is only
   * "where detectable", and the turns' text is in them. Masked without `phi:read` (numbers — the
   * scores — stay as they are).
   */
  private showOutput(output: unknown, viewer: Principal): unknown {
    return hasPermission(viewer.role, 'phi:read') ? output : maskValue(output, 'phi');
  }

  /**
   * Decrypts one sealed column of a run for a caller. A value that does not decrypt (tampered
   * with, or moved from another row) fails closed — 500 INTERNAL_ERROR, nothing of the value — and
   * is recorded first as a high-risk failed read in the audit log (field names and the reason
   * only), as a task read is (TaskService.detail).
   */
  private async open<T>(row: PipelineRow, field: 'context' | 'output', ctx: AuditContext, read: () => T): Promise<T> {
    try {
      return read();
    } catch (err) {
      if (err instanceof DecryptionError) {
        await this.phiAudit?.failure(ctx, { resource_type: 'pipeline', resource_id: row.pipeline_id, fields: [field], classification: row.data_classification, reason: err.reason }).catch(() => {});
      }
      throw err;
    }
  }

  async get(pipelineId: string, viewer: Principal, ctx: AuditContext = { actor: actorOf(viewer) }): Promise<PipelineDetail> {
    const row = await this.row(pipelineId);
    const stages = await this.repo.stages(this.db, row.pipeline_id);
    const context = await this.open(row, 'context', ctx, () => this.repo.openContext(row));
    const detail = detailView(row, stages, hasPermission(viewer.role, 'phi:read') ? context : maskValue(context, 'phi'));
    const output = await this.open(row, 'output', ctx, () => this.repo.openOutput(row));
    if (output !== null) detail.output = this.showOutput(output, viewer);
    return detail;
  }

  async list(q: ListPipelinesInput): Promise<{ pipelines: PipelineSummary[]; total: number }> {
    const bidx = (purpose: 'patient_id' | 'session_id', v: string | undefined) => {
      if (v === undefined) return undefined;
      // Without a blind index nothing is indexed, so nothing can match.
      return this.blindIndex ? this.blindIndex(purpose, v) : '\u0000';
    };
    const { rows, total } = await this.repo.list(this.db, {
      status: q.status, template: q.template, patient_bidx: bidx('patient_id', q.patient_id), session_bidx: bidx('session_id', q.session_id),
    }, q.sort ?? 'created_at:desc', q.limit ?? 50, q.offset ?? 0);
    return { pipelines: rows.map(summaryView), total };
  }

  async progress(pipelineId: string): Promise<PipelineProgress> {
    const row = await this.row(pipelineId);
    const stages = await this.repo.stages(this.db, row.pipeline_id);
    const progress = row.status === 'completed' ? 1 : runProgress(stages);
    return {
      pipeline_id: row.pipeline_id,
      status: row.status,
      progress,
      current_stage: currentStage(stages),
      completed_stages: stages.filter((s) => s.status === 'completed').length,
      total_stages: stages.length,
      stages: stages.map((s) => { const v = stageView(s); return { stage: v.stage, status: v.status, progress: v.progress }; }),
      estimated_completion: estimatedCompletion(row, progress),
    };
  }

  /**
   * The exported result: an output carrying `formats` (techdeck's export, the mental-health
   * report) is served in the format asked for; any other output is JSON (or one JSONL line).
   */
  async output(pipelineId: string, format: OutputFormat, viewer: Principal, ctx: AuditContext = { actor: actorOf(viewer) }): Promise<PipelineOutput> {
    const row = await this.row(pipelineId);
    const raw = await this.open(row, 'output', ctx, () => this.repo.openOutput(row));
    if (raw === null) {
      throw new ConflictError('CONFLICT', `The pipeline has no output (status ${row.status}).`, { details: { status: row.status } });
    }
    const output = this.showOutput(raw, viewer);
    const filename = `pipeline-${row.pipeline_id}.${format}`;
    const formats = (output as { formats?: Record<string, unknown> } | null)?.formats;
    const given = formats && typeof formats[format] === 'string' ? formats[format] : undefined;
    if (given !== undefined) return { body: given, content_type: CONTENT_TYPES[format], filename };
    if (format === 'csv') {
      throw new ValidationError('This pipeline\'s output has no CSV export.', [{ field: 'format', message: 'csv is available only for outputs with an export (json or jsonl are)' }]);
    }
    return { body: format === 'json' ? JSON.stringify(output) : `${JSON.stringify(output)}\n`, content_type: CONTENT_TYPES[format], filename };
  }

  cancel(pipelineId: string, reason: string): Promise<void> {
    return this.engine.cancel(pipelineId, reason);
  }

  pause(pipelineId: string): Promise<void> {
    return this.engine.pause(pipelineId);
  }

  resume(pipelineId: string): Promise<void> {
    return this.engine.resume(pipelineId);
  }

  retryStage(pipelineId: string, stage: string): Promise<{ task_id: string | null }> {
    return this.engine.retryStage(pipelineId, stage);
  }

  // ---- templates ------------------------------------------------------------------------------

  async templates(limit: number, offset: number, sort?: TemplateSort): Promise<{ templates: PipelineTemplate[]; total: number }> {
    const { rows, total } = await this.repo.listTemplates(this.db, sort, limit, offset);
    return { templates: rows, total };
  }

  async createTemplate(input: CreateTemplateInput, by: Principal): Promise<PipelineTemplate> {
    const stages = validateStages(input.stages, 'stages');
    if (BUILTIN_TEMPLATES[input.name]) throw new ConflictError('CONFLICT', `'${input.name}' is a built-in template.`, { details: { name: input.name } });
    const t = await this.repo.insertTemplate(this.db, { name: input.name, description: input.description ?? '', stages, created_by: principalKey(by) });
    if (!t) throw new ConflictError('CONFLICT', `A template named '${input.name}' already exists.`, { details: { name: input.name } });
    return t;
  }
}
