/**
 * pipelines: multi-stage runs over tasks (SPEC §7) — templates and DAG validation, the durable
 * engine that turns stages into tasks and advances runs from task events (with reconciliation),
 * the read/output use cases, and (stages/) the handlers the built-in agents run.
 * Does not belong here: assignment and leases (tasks/), transports (http/, realtime/).
 */
export { PipelineEngine, PIPELINE_ENGINE_PRINCIPAL, type PipelineEngineOptions, type PipelineEngineLogger, type CreatedPipeline } from './pipeline-engine.ts';
export { PipelineService, type PipelineProgress, type PipelineOutput } from './pipeline-service.ts';
export { PipelineRepository, isUuid, type PipelineRow, type StageRow, type PipelineListFilter } from './pipeline-repository.ts';
export {
  BUILTIN_TEMPLATES, DEFAULT_TEMPLATE, validateStages, findCycle, topologicalOrder, sinkStages, descendants, criticalPathSeconds,
  type StageDefinition, type PipelineTemplate,
} from './pipeline-templates.ts';
export { runProgress, stageProgress, type PipelineDetail, type PipelineSummary, type StageView } from './pipeline-view.ts';
export { checkInputData } from './pipeline-input.ts';
export { LOCAL_STAGE_HANDLERS, StageFailure, TECHDECK_STAGES, MENTAL_HEALTH_STAGES, STANDALONE_TASK_TYPES, EXPORT_CONTENT_TYPES, type StageContext, type StageHandler } from './stages/index.ts';
