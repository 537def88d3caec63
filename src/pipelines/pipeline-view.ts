/** How runs and stages are shown over the API (SPEC §7): progress, current stage, estimates. */
import type { PipelineRow, StageRow } from './pipeline-repository.ts';
import type { StageView, PipelineView as PipelineSummary, PipelineDetailView as PipelineDetail } from '../contracts/views.ts';

export type { StageView, PipelineView as PipelineSummary, PipelineDetailView as PipelineDetail } from '../contracts/views.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const round = (n: number) => Math.round(n * 10000) / 10000;
const TERMINAL = new Set(['completed', 'partially_completed', 'failed', 'cancelled']);

export function stageProgress(s: Pick<StageRow, 'status' | 'task_progress'>): number {
  if (s.status === 'completed') return 1;
  if (s.status === 'ready' || s.status === 'running') return Math.min(1, Math.max(0, s.task_progress ?? 0));
  return 0;
}

/** completed stages / total + running stages' own progress / total. */
export function runProgress(stages: ReadonlyArray<Pick<StageRow, 'status' | 'task_progress'>>): number {
  if (!stages.length) return 0;
  return round(stages.reduce((a, s) => a + stageProgress(s), 0) / stages.length);
}

export function stageView(s: StageRow): StageView {
  return {
    stage: s.stage,
    name: s.name,
    task_type: s.task_type,
    depends_on: s.depends_on,
    status: s.status,
    task_id: s.task_id,
    runs: s.run_count,
    previous_task_ids: s.previous_task_ids,
    started_at: iso(s.started_at ?? s.task_started_at),
    completed_at: iso(s.completed_at),
    progress: round(stageProgress(s)),
    error: s.error,
  };
}

export function summaryView(r: PipelineRow): PipelineSummary {
  return {
    pipeline_id: r.pipeline_id,
    name: r.name,
    description: r.description,
    template: r.template,
    status: r.status,
    error_strategy: r.error_strategy,
    priority: r.priority,
    progress: r.status === 'completed' ? 1 : round(r.progress ?? 0),
    error: r.error,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
    started_at: iso(r.started_at),
    completed_at: iso(r.completed_at),
    updated_at: r.updated_at.toISOString(),
    estimated_duration: r.estimated_duration_s,
  };
}

/** The first running stage in stage order, else the first ready one. */
export function currentStage(stages: readonly StageRow[]): string | null {
  return (stages.find((s) => s.status === 'running') ?? stages.find((s) => s.status === 'ready'))?.stage ?? null;
}

/** Now + the estimated duration still to go (by progress); the end time once finished. */
export function estimatedCompletion(r: PipelineRow, progress: number, now = Date.now()): string | null {
  if (TERMINAL.has(r.status)) return iso(r.completed_at);
  if (r.status !== 'running' || r.estimated_duration_s === null) return null;
  return new Date(now + r.estimated_duration_s * (1 - progress) * 1000).toISOString();
}

export function detailView(r: PipelineRow, stages: StageRow[], context: unknown): PipelineDetail {
  const progress = r.status === 'completed' ? 1 : runProgress(stages);
  return {
    ...summaryView(r),
    progress,
    current_stage: currentStage(stages),
    stages: stages.map(stageView),
    estimated_completion: estimatedCompletion(r, progress),
    context,
    parameters: r.parameters,
    metadata: r.metadata,
  };
}
