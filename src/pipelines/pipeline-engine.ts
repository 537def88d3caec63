/**
 * The pipeline engine (SPEC §7.3): turns a run's DAG into tasks and advances it as they finish.
 *
 * All state is in the database. One idempotent step — `advance(pipeline_id)` — reads a run under
 * its row lock, syncs each live stage from its task (completed / permanently failed / cancelled /
 * picked up), applies the error strategy, creates the tasks of stages whose dependencies all
 * completed (unless paused), and finishes the run when no stage is live. Task events only
 * trigger steps; a periodic reconcile (and one at start) triggers them for anything an event
 * missed (a crash, another process), so a run continues from its last completed stage and
 * nothing completed is redone. Every write is guarded by the status it expects, and steps of
 * one run are serialised (in process by a promise chain, across processes by `FOR UPDATE`).
 */
import { ConflictError, NotFoundError, ValidationError, newId, type DomainEventName, type DomainEvents, type EventBus } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import type { Principal } from '../auth/index.ts';
import type { TaskService } from '../tasks/index.ts';
import { PRIORITY_ALIASES, type Classification, type CreateTaskInput } from '../contracts/tasks.ts';
import type { CreatePipelineInput, PipelineStatus, StageStatus } from '../contracts/pipelines.ts';
import { BUILTIN_TEMPLATES, DEFAULT_TEMPLATE, criticalPathSeconds, descendants, sinkStages, validateStages, type StageDefinition } from './pipeline-templates.ts';
import { isUuid, type PipelineRepository, type PipelineRow, type StageRow } from './pipeline-repository.ts';
import { checkInputData } from './pipeline-input.ts';

type Emit = <K extends DomainEventName>(name: K, payload: DomainEvents[K]) => void;

export interface PipelineEngineLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface PipelineEngineOptions {
  /** How often runs are reconciled against their tasks (catches lost events). Default 5000. */
  reconcileIntervalMs?: number;
  /** Keyed hash of context.patient_id / session_id, so runs can be searched without clear text. */
  blindIndex?: (purpose: 'patient_id' | 'session_id', value: string) => string;
  logger?: PipelineEngineLogger;
  /** Assumed seconds per stage when there is no recent history for its task type. Default 2. */
  defaultStageSeconds?: number;
}

export interface CreatedPipeline {
  pipeline_id: string;
  status: PipelineStatus;
  template: string;
  created_at: string;
  estimated_duration: number;
  stages: string[];
}

/** The principal the engine acts as when it cancels tasks of a run. */
export const PIPELINE_ENGINE_PRINCIPAL: Principal = Object.freeze({ type: 'user', id: 'pipeline-engine', role: 'system', name: 'pipeline-engine' });

const LIVE: readonly StageStatus[] = ['pending', 'ready', 'running'];

export class PipelineEngine {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly queued = new Set<string>();
  private readonly unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<number> | null = null;
  private running = false;
  /** Stage `running` updates in flight (task picked up). */
  private readonly marks = new Set<Promise<void>>();
  private readonly opts: Required<Omit<PipelineEngineOptions, 'blindIndex'>> & Pick<PipelineEngineOptions, 'blindIndex'>;

  constructor(
    private readonly db: Db,
    readonly repo: PipelineRepository,
    private readonly tasks: TaskService,
    private readonly bus: EventBus,
    opts: PipelineEngineOptions = {},
  ) {
    this.opts = {
      reconcileIntervalMs: opts.reconcileIntervalMs ?? 5000,
      blindIndex: opts.blindIndex,
      logger: opts.logger ?? { warn: () => {}, error: () => {} },
      defaultStageSeconds: opts.defaultStageSeconds ?? 2,
    };
  }

  // ---- lifecycle --------------------------------------------------------------------------

  /** Registers the built-in templates, listens to task events, reconciles every run, starts the timer. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.db.transaction((q) => this.repo.upsertBuiltinTemplates(q, Object.values(BUILTIN_TEMPLATES)));
    const kick = (e: { pipeline_id: string | null }) => {
      if (e.pipeline_id) void this.advance(e.pipeline_id);
    };
    const pickedUp = (e: { task_id: string; pipeline_id: string | null }) => {
      if (!e.pipeline_id) return;
      const mark: Promise<void> = this.repo.markRunning(this.db, e.task_id)
        .then(() => {}, (err: unknown) => this.opts.logger.warn({ err, task_id: e.task_id }, 'pipeline stage running update failed'))
        .finally(() => this.marks.delete(mark));
      this.marks.add(mark);
    };
    this.unsubscribe.push(
      this.bus.on('task:completed', kick),
      this.bus.on('task:failed', (e) => { if (e.dead_letter) kick(e); }),
      this.bus.on('task:cancelled', kick),
      this.bus.on('task:assigned', pickedUp),
      this.bus.on('task:progress_updated', pickedUp),
    );
    for (let i = 0; i < 50; i++) {
      if ((await this.reconcile()) < 200) break;
    }
    if (this.opts.reconcileIntervalMs > 0) {
      this.timer = setInterval(() => void this.reconcile().catch((err: unknown) => this.opts.logger.warn({ err }, 'pipeline reconcile failed')), this.opts.reconcileIntervalMs);
      this.timer.unref();
    }
  }

  /** Stops listening and waits for in-flight steps. Runs stay as they are in the database. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const u of this.unsubscribe.splice(0)) u();
    await this.idle();
  }

  /** Resolves when no step (or stage `running` update) is queued or running in this process. */
  async idle(): Promise<void> {
    while (this.chains.size || this.reconciling || this.marks.size) {
      await Promise.allSettled([...this.chains.values(), ...this.marks, ...(this.reconciling ? [this.reconciling] : [])]);
    }
  }

  /** Advances every run that needs it; returns how many were looked at. */
  async reconcile(limit = 200): Promise<number> {
    if (this.reconciling) return this.reconciling;
    const work = (async () => {
      const ids = await this.repo.needingAttention(this.db, limit);
      await Promise.all(ids.map((id) => this.advance(id)));
      for (const taskId of await this.repo.orphanTasks(this.db, 100)) {
        await this.tasks.cancel(taskId, 'pipeline cancelled', PIPELINE_ENGINE_PRINCIPAL).catch(() => {});
      }
      return ids.length;
    })();
    this.reconciling = work;
    try {
      return await work;
    } finally {
      this.reconciling = null;
    }
  }

  // ---- the step ---------------------------------------------------------------------------

  /** Queues one step of the run (coalesced: at most one waiting per run). Never rejects. */
  advance(pipelineId: string): Promise<void> {
    const current = this.chains.get(pipelineId);
    if (current && this.queued.has(pipelineId)) return current;
    this.queued.add(pipelineId);
    const next = (current ?? Promise.resolve()).then(async () => {
      this.queued.delete(pipelineId);
      await this.transact(async (q, emit) => {
        const run = await this.repo.get(q, pipelineId, true);
        if (run) await this.step(q, run, emit);
      });
    }).catch((err: unknown) => {
      this.opts.logger.error({ err, pipeline_id: pipelineId }, 'pipeline step failed');
    });
    const tracked = next.finally(() => {
      if (this.chains.get(pipelineId) === tracked) this.chains.delete(pipelineId);
    });
    this.chains.set(pipelineId, tracked);
    return tracked;
  }

  /** Runs `fn` in a transaction; events are emitted after commit, then the new tasks announced. */
  private async transact<T>(fn: (q: Queryable, emit: Emit) => Promise<T>): Promise<T> {
    const pending: Array<() => void> = [];
    const created: string[] = [];
    const emit: Emit = (name, payload) => {
      pending.push(() => this.bus.emit(name, payload));
      if (name === 'pipeline:stage_started') created.push((payload as DomainEvents['pipeline:stage_started']).task_id);
    };
    const out = await this.db.transaction((q) => fn(q, emit));
    for (const p of pending) p();
    // createMany inside our transaction announced the tasks before they were visible to other
    // connections; announce them again now that they are committed.
    if (created.length) this.bus.emit('task:eligible', { task_ids: created });
    return out;
  }

  /** One step of a locked run (see the file comment). */
  private async step(q: Queryable, run: PipelineRow, emit: Emit): Promise<void> {
    if (run.status === 'cancelled' || run.status === 'completed' || run.status === 'partially_completed') return;
    const id = run.pipeline_id;
    const stages = await this.repo.stages(q, id);
    const by = new Map(stages.map((s) => [s.stage, s]));

    // 1. Sync live stages from their tasks.
    for (const s of stages) {
      if (!s.task_id || (s.status !== 'ready' && s.status !== 'running')) continue;
      const ts = s.task_status;
      if (ts === 'completed') {
        if (await this.repo.updateStage(q, id, s.stage, ['ready', 'running'], { status: 'completed', started: 'now', completed: 'now', progress: 1, error: null })) {
          s.status = 'completed';
          emit('pipeline:stage_completed', { pipeline_id: id, stage: s.stage, task_id: s.task_id, status: 'completed' });
        }
      } else if (((ts === 'failed' || ts === 'timeout') && s.task_dead_letter) || ts === 'cancelled' || ts === null) {
        const error = ts === 'cancelled' ? { code: 'TASK_CANCELLED', message: `The task of stage '${s.stage}' was cancelled.` }
          : ts === null ? { code: 'TASK_MISSING', message: `The task of stage '${s.stage}' no longer exists.` }
          : { code: s.task_error?.code ?? 'STAGE_FAILED', message: s.task_error?.message ?? `Stage '${s.stage}' failed.`, retryable: s.task_error?.retryable ?? false, ...(s.task_error?.details !== undefined ? { details: s.task_error.details } : {}) };
        if (await this.repo.updateStage(q, id, s.stage, ['ready', 'running'], { status: 'failed', completed: 'now', error })) {
          s.status = 'failed';
          s.error = error;
          emit('pipeline:stage_completed', { pipeline_id: id, stage: s.stage, task_id: s.task_id, status: 'failed' });
        }
      } else if ((ts === 'assigned' || ts === 'running') && s.status === 'ready') {
        if (await this.repo.updateStage(q, id, s.stage, ['ready'], { status: 'running', started: 'now' })) s.status = 'running';
      }
    }
    if (run.status !== 'running' && run.status !== 'paused') return;

    // 2. The error strategy: skip what can no longer run.
    const failed = stages.filter((s) => s.status === 'failed');
    if (failed.length) {
      const doomed = new Set<string>();
      if (run.error_strategy === 'stop') stages.forEach((s) => doomed.add(s.stage));
      else failed.forEach((f) => descendants(stages, f.stage).forEach((d) => doomed.add(d)));
      const cause = failed[0]!.stage;
      for (const s of stages) {
        if (s.status !== 'pending' || !doomed.has(s.stage)) continue;
        const error = run.error_strategy === 'stop'
          ? { code: 'PIPELINE_STOPPED', message: `Not run: stage '${cause}' failed and the error strategy is stop.` }
          : { code: 'UPSTREAM_FAILED', message: `Not run: a stage it depends on failed (${failed.map((f) => f.stage).filter((f) => descendants(stages, f).has(s.stage)).join(', ')}).` };
        if (await this.repo.updateStage(q, id, s.stage, ['pending'], { status: 'skipped', error })) s.status = 'skipped';
      }
    }

    // 3. Create the tasks of stages whose dependencies all completed.
    if (run.status === 'running' && !(run.error_strategy === 'stop' && failed.length)) {
      const next = stages.filter((s) => s.status === 'pending' && s.depends_on.every((d) => by.get(d)?.status === 'completed'));
      if (next.length) await this.createStageTasks(q, run, next, by, emit);
    }

    // 4. Finish the run, or fail it now under `stop`.
    const live = stages.some((s) => LIVE.includes(s.status));
    if (!live) await this.finish(q, run, stages, emit);
    else if (failed.length && run.error_strategy === 'stop') await this.fail(q, run, failed[0]!, emit);
  }

  private async createStageTasks(q: Queryable, run: PipelineRow, next: StageRow[], by: Map<string, StageRow>, emit: Emit): Promise<void> {
    const depTaskIds = [...new Set(next.flatMap((s) => s.depends_on.map((d) => by.get(d)!.task_id!)))];
    const results = await this.results(q, depTaskIds);
    const context = this.repo.openContext(run);
    const input = next.some((s) => s.depends_on.length === 0) ? this.repo.openInput(run) : undefined;
    const { stage_config: stageConfig, ...shared } = run.parameters as { stage_config?: Record<string, Record<string, unknown>> };
    const inputs: CreateTaskInput[] = next.map((s) => ({
      task_type: s.task_type,
      parameters: {
        ...(s.depends_on.length === 0 ? { input_data: input } : { inputs: Object.fromEntries(s.depends_on.map((d) => [d, results.get(by.get(d)!.task_id!) ?? null])) }),
        context,
        config: { ...s.config, ...shared, ...(stageConfig?.[s.stage] ?? {}) },
      },
      priority: run.priority,
      ...(s.required_capabilities ? { required_capabilities: s.required_capabilities } : {}),
      pipeline_id: run.pipeline_id,
      stage: s.stage,
      ...(s.timeout_seconds !== null ? { timeout_seconds: s.timeout_seconds } : {}),
      ...(s.max_retries !== null ? { max_retries: s.max_retries } : {}),
      data_classification: run.data_classification as Classification,
      metadata: { pipeline_name: run.name, template: run.template, stage_run: s.run_count + 1 },
    }));
    const rows = await this.tasks.createMany(inputs, creatorOf(run), q);
    for (const [i, s] of next.entries()) {
      const taskId = rows[i]!.task_id;
      if (await this.repo.updateStage(q, run.pipeline_id, s.stage, ['pending'], { status: 'ready', task_id: taskId, bumpRun: true, error: null, progress: 0 })) {
        s.status = 'ready';
        s.task_id = taskId;
        emit('pipeline:stage_started', { pipeline_id: run.pipeline_id, stage: s.stage, task_id: taskId });
      }
    }
  }

  private async results(q: Queryable, taskIds: string[]): Promise<Map<string, unknown>> {
    if (!taskIds.length) return new Map();
    const { rows } = await q.query<{ task_id: string; result: string | null }>('SELECT task_id, result FROM tasks WHERE task_id = ANY($1::uuid[])', [taskIds]);
    return new Map(rows.map((r) => [r.task_id, this.tasks.repo.openResult(r)]));
  }

  private async finish(q: Queryable, run: PipelineRow, stages: StageRow[], emit: Emit): Promise<void> {
    const completed = stages.filter((s) => s.status === 'completed');
    const failed = stages.filter((s) => s.status === 'failed');
    if (completed.length === stages.length) {
      const sinks = sinkStages(stages);
      const results = await this.results(q, sinks.map((s) => s.task_id!));
      const output = sinks.length === 1 ? results.get(sinks[0]!.task_id!) ?? null : Object.fromEntries(sinks.map((s) => [s.stage, results.get(s.task_id!) ?? null]));
      if (await this.repo.setStatus(q, run.pipeline_id, ['running', 'paused'], 'completed', { output, classification: run.data_classification, error: null, finished: true })) {
        emit('pipeline:completed', { pipeline_id: run.pipeline_id, status: 'completed' });
      }
      return;
    }
    if (run.error_strategy === 'continue' && completed.length > 0) {
      // The deepest completed outputs: completed stages no completed stage depends on.
      const done = new Set(completed.map((s) => s.stage));
      const leaves = completed.filter((s) => !completed.some((o) => o.depends_on.includes(s.stage) && done.has(o.stage)));
      const results = await this.results(q, leaves.map((s) => s.task_id!));
      const output = Object.fromEntries(leaves.map((s) => [s.stage, results.get(s.task_id!) ?? null]));
      const error = { code: 'STAGES_FAILED', message: `Stages failed: ${failed.map((s) => s.stage).join(', ')}.`, stages: failed.map((s) => ({ stage: s.stage, code: s.error?.code ?? 'STAGE_FAILED' })) };
      if (await this.repo.setStatus(q, run.pipeline_id, ['running', 'paused'], 'partially_completed', { output, classification: run.data_classification, error, finished: true })) {
        emit('pipeline:completed', { pipeline_id: run.pipeline_id, status: 'partially_completed' });
      }
      return;
    }
    const first = failed[0] ?? stages.find((s) => s.status === 'skipped');
    if (first) await this.fail(q, run, first, emit);
  }

  private async fail(q: Queryable, run: PipelineRow, stage: StageRow, emit: Emit): Promise<void> {
    const error = { code: stage.error?.code ?? 'STAGE_FAILED', message: `Stage '${stage.stage}' failed: ${stage.error?.message ?? 'no detail'}`, stage: stage.stage };
    if (await this.repo.setStatus(q, run.pipeline_id, ['running', 'paused'], 'failed', { error, finished: true })) {
      emit('pipeline:failed', { pipeline_id: run.pipeline_id, status: 'failed', error });
    }
  }

  // ---- use cases ----------------------------------------------------------------------------

  /** Resolves the stages of a create body: a template by name, or an inline DAG. */
  async resolveStages(input: Pick<CreatePipelineInput, 'template' | 'stages'>): Promise<{ template: string; stages: StageDefinition[] }> {
    if (input.stages) {
      if (input.template) throw new ValidationError('Give either a template or inline stages.', [{ field: 'template', message: 'must be absent when stages are given' }]);
      return { template: 'inline', stages: validateStages(input.stages, 'stages') };
    }
    const name = input.template ?? DEFAULT_TEMPLATE;
    const t = BUILTIN_TEMPLATES[name] ?? (await this.repo.getTemplate(this.db, name));
    if (!t) throw new ValidationError(`Unknown template '${name}'.`, [{ field: 'template', message: `unknown template '${name}'` }]);
    return { template: t.name, stages: t.stages };
  }

  /**
   * Starts a run: the run, its stages and the root stages' tasks are written in one transaction;
   * `inTx` (the creation's audit entry) is written in it too, so a run is never created without it.
   */
  async create(input: CreatePipelineInput, creator: Principal, inTx?: (q: Queryable, pipelineId: string) => Promise<void>): Promise<CreatedPipeline> {
    const { template, stages } = await this.resolveStages(input);
    const inputData = checkInputData(input.input_data);
    const context = input.context ?? {};
    const bidx = (purpose: 'patient_id' | 'session_id') => {
      const v = context[purpose];
      return this.opts.blindIndex && (typeof v === 'string' || typeof v === 'number') ? this.opts.blindIndex(purpose, String(v)) : null;
    };
    const means = await this.repo.meanStageSeconds(this.db, [...new Set(stages.map((s) => s.task_type))]);
    const estimate = criticalPathSeconds(stages, (s) => means.get(s.task_type) ?? this.opts.defaultStageSeconds);
    const pipelineId = newId();
    const priority = typeof input.priority === 'string' ? PRIORITY_ALIASES[input.priority] : (input.priority ?? 5);
    const name = input.name ?? `${template}-${pipelineId.slice(-8)}`;
    const row = await this.transact(async (q, emit) => {
      const run = await this.repo.insertRun(q, {
        pipeline_id: pipelineId, name, description: input.description ?? '', template, status: 'running', error_strategy: input.error_strategy ?? 'stop',
        priority, data_classification: 'phi', input_data: inputData, context, patient_bidx: bidx('patient_id'), session_bidx: bidx('session_id'),
        parameters: input.parameters ?? {}, metadata: input.metadata ?? {}, estimated_duration_s: Number(estimate.toFixed(1)), created_by: `${creator.type}:${creator.id}`,
      });
      await this.repo.insertStages(q, pipelineId, stages);
      await inTx?.(q, pipelineId);
      emit('pipeline:created', { pipeline_id: pipelineId, template, name });
      await this.step(q, run, emit);
      return run;
    });
    return { pipeline_id: pipelineId, status: 'running', template, created_at: row.created_at.toISOString(), estimated_duration: Number(estimate.toFixed(1)), stages: stages.map((s) => s.stage) };
  }

  private async locked<T>(pipelineId: string, fn: (q: Queryable, run: PipelineRow, emit: Emit) => Promise<T>): Promise<T> {
    if (!isUuid(pipelineId)) throw new NotFoundError('PIPELINE_NOT_FOUND');
    // Queue behind this run's in-process steps so both do not wait on the same row lock.
    await this.chains.get(pipelineId);
    return this.transact(async (q, emit) => {
      const run = await this.repo.get(q, pipelineId, true);
      if (!run) throw new NotFoundError('PIPELINE_NOT_FOUND');
      return fn(q, run, emit);
    });
  }

  /** Cancels a run: no new stages; the live stage tasks are cancelled. */
  async cancel(pipelineId: string, reason: string): Promise<void> {
    const live = await this.locked(pipelineId, async (q, run, emit) => {
      if (!['created', 'running', 'paused'].includes(run.status)) throw transition(run.status, 'cancelled');
      await this.repo.setStatus(q, pipelineId, ['created', 'running', 'paused'], 'cancelled', { error: { code: 'PIPELINE_CANCELLED', message: reason }, finished: true });
      const stages = await this.repo.stages(q, pipelineId);
      const taskIds: string[] = [];
      for (const s of stages) {
        if (!LIVE.includes(s.status)) continue;
        if (s.task_id && s.status !== 'pending') taskIds.push(s.task_id);
        await this.repo.updateStage(q, pipelineId, s.stage, LIVE, { status: 'skipped', error: { code: 'PIPELINE_CANCELLED', message: reason }, ...(s.status !== 'pending' ? { completed: 'now' as const } : {}) });
      }
      emit('pipeline:failed', { pipeline_id: pipelineId, status: 'cancelled', error: { code: 'PIPELINE_CANCELLED', message: reason } });
      return taskIds;
    });
    for (const taskId of live) {
      await this.tasks.cancel(taskId, reason, PIPELINE_ENGINE_PRINCIPAL).catch((err: unknown) => {
        if (!(err instanceof ConflictError)) this.opts.logger.warn({ err, task_id: taskId }, 'cancelling a stage task failed');
      });
    }
  }

  /** Pauses a run: no new stage tasks are created; running ones finish. */
  async pause(pipelineId: string): Promise<void> {
    await this.locked(pipelineId, async (q, run) => {
      if (run.status === 'paused') return;
      if (run.status !== 'running') throw transition(run.status, 'paused');
      await this.repo.setStatus(q, pipelineId, ['running'], 'paused');
    });
  }

  async resume(pipelineId: string): Promise<void> {
    await this.locked(pipelineId, async (q, run, emit) => {
      if (run.status === 'running') return;
      if (run.status !== 'paused') throw transition(run.status, 'running');
      await this.repo.setStatus(q, pipelineId, ['paused'], 'running');
      await this.step(q, { ...run, status: 'running' }, emit);
    });
  }

  /** Re-runs a failed stage with a fresh task; stages skipped because of it become pending again. */
  async retryStage(pipelineId: string, stage: string): Promise<{ task_id: string | null }> {
    return this.locked(pipelineId, async (q, run, emit) => {
      if (!['running', 'paused', 'failed', 'partially_completed'].includes(run.status)) throw transition(run.status, 'running');
      const stages = await this.repo.stages(q, pipelineId);
      const target = stages.find((s) => s.stage === stage);
      if (!target) throw new NotFoundError('NOT_FOUND', `The pipeline has no stage '${stage}'.`);
      if (target.status !== 'failed') throw new ConflictError('INVALID_STATUS_TRANSITION', `Only a failed stage can be retried; '${stage}' is ${target.status}.`, { details: { from: target.status, to: 'pending' } });
      await this.repo.updateStage(q, pipelineId, stage, ['failed'], { status: 'pending', archiveTask: true, task_id: null, error: null, progress: 0, started: 'clear', completed: 'clear' });
      for (const s of stages) {
        if (s.status === 'skipped') await this.repo.updateStage(q, pipelineId, s.stage, ['skipped'], { status: 'pending', error: null, completed: 'clear' });
      }
      let status = run.status;
      if (status === 'failed' || status === 'partially_completed') {
        await this.repo.setStatus(q, pipelineId, [status], 'running', { clearResult: true });
        status = 'running';
      }
      await this.step(q, { ...run, status }, emit);
      const after = await this.repo.stages(q, pipelineId);
      return { task_id: after.find((s) => s.stage === stage)?.task_id ?? null };
    });
  }
}

function transition(from: string, to: string): ConflictError {
  return new ConflictError('INVALID_STATUS_TRANSITION', `A ${from} pipeline cannot become ${to}.`, { details: { from, to } });
}

/** Stage tasks are created on behalf of the run's creator (tasks.created_by = the same key). */
function creatorOf(run: PipelineRow): Principal {
  const key = run.created_by ?? 'user:pipeline-engine';
  const i = key.indexOf(':');
  const type = key.slice(0, i) === 'agent' ? 'agent' : 'user';
  const id = key.slice(i + 1);
  return { type, id, role: 'system', name: id };
}
