/** Pipeline REST bodies (SPEC §7): runs, custom templates, list/output queries. */
import Type, { type Static } from 'typebox';
import { Id, JsonObject, ListQuery } from './common.ts';
import { Capability } from './agents.ts';
import { Priority, TaskType } from './tasks.ts';


export const PIPELINE_STATUSES = ['created', 'running', 'paused', 'completed', 'partially_completed', 'failed', 'cancelled'] as const;
export type PipelineStatus = (typeof PIPELINE_STATUSES)[number];
export const STAGE_STATUSES = ['pending', 'ready', 'running', 'completed', 'failed', 'skipped'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];
export const ERROR_STRATEGIES = ['stop', 'continue'] as const;
export type ErrorStrategy = (typeof ERROR_STRATEGIES)[number];
export const INPUT_FORMATS = ['text', 'json', 'jsonl', 'csv'] as const;
export const OUTPUT_FORMATS = ['json', 'jsonl', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Stage names double as path segments, so they stay within the path-id alphabet. */
export const STAGE_NAME_PATTERN = '^[a-z][a-z0-9_-]{0,63}$';
export const StageName = Type.String({ pattern: STAGE_NAME_PATTERN, description: 'Stage id: lower case, [a-z0-9_-], ≤ 64' });
export const TemplateName = Type.String({ pattern: '^[a-z][a-z0-9_-]{0,63}$', description: 'Template name: lower case, [a-z0-9_-], ≤ 64' });

/** One stage of a DAG. `task_type` defaults to the stage name; unknown types must name capabilities. */
export const StageDefinitionSchema = Type.Object({
  stage: StageName,
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  task_type: Type.Optional(TaskType),
  depends_on: Type.Optional(Type.Array(StageName, { maxItems: 50 })),
  required_capabilities: Type.Optional(Type.Array(Capability, { minItems: 1, maxItems: 50, uniqueItems: true })),
  timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7200 })),
  max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  config: Type.Optional(JsonObject),
}, { additionalProperties: false });
export type StageDefinitionInput = Static<typeof StageDefinitionSchema>;

export const StageList = Type.Array(StageDefinitionSchema, { minItems: 1, maxItems: 100 });

export const CreateTemplateBody = Type.Object({
  name: TemplateName,
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  stages: StageList,
}, { additionalProperties: false });
export type CreateTemplateInput = Static<typeof CreateTemplateBody>;

/** `{format, content}` or `{text}`; which combination is valid is checked by the engine. */
export const InputDataSchema = Type.Object({
  format: Type.Optional(Type.Enum(INPUT_FORMATS)),
  content: Type.Optional(Type.Unknown({ description: 'string; for format json also an already-parsed JSON value' })),
  text: Type.Optional(Type.String()),
}, { additionalProperties: false });

export const CreatePipelineBody = Type.Object({
  template: Type.Optional(TemplateName),
  stages: Type.Optional(StageList),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  input_data: InputDataSchema,
  context: Type.Optional(JsonObject),
  parameters: Type.Optional(JsonObject),
  priority: Type.Optional(Priority),
  metadata: Type.Optional(JsonObject),
  error_strategy: Type.Optional(Type.Enum(ERROR_STRATEGIES)),
}, { additionalProperties: false });
export type CreatePipelineInput = Static<typeof CreatePipelineBody>;

export const ListPipelinesQuery = Type.Object({
  status: Type.Optional(Type.Enum(PIPELINE_STATUSES)),
  template: Type.Optional(TemplateName),
  patient_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'exact match through the blind index' })),
  session_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'exact match through the blind index' })),
  ...ListQuery,
  sort: Type.Optional(Type.String({ pattern: '^(created_at|updated_at|completed_at|status|priority|template|name):(asc|desc)$' })),
}, { additionalProperties: false });
export type ListPipelinesInput = Static<typeof ListPipelinesQuery>;

/**
 * `GET /pipelines/templates?sort=` values (SPEC §2). Without `sort`: built-in templates first,
 * then by name. Each maps to a fixed ORDER BY in the repository (never the caller's text).
 */
export const TEMPLATE_SORTS = ['name:asc', 'name:desc', 'created_at:asc', 'created_at:desc'] as const;
export type TemplateSort = (typeof TEMPLATE_SORTS)[number];

export const ListTemplatesQuery = Type.Object({
  ...ListQuery,
  sort: Type.Optional(Type.Enum(TEMPLATE_SORTS)),
}, { additionalProperties: false });

export const OutputQuery = Type.Object({
  format: Type.Optional(Type.Enum(OUTPUT_FORMATS)),
}, { additionalProperties: false });

export const PipelineParams = Type.Object({ pipeline_id: Id }, { additionalProperties: false });
export const StageParams = Type.Object({ pipeline_id: Id, stage: StageName }, { additionalProperties: false });
export const ControlBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });
