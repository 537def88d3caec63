/** Task REST bodies (SPEC §6). */
import Type, { type Static } from 'typebox';
import { Id, JsonObject, ListQuery, MAX_INT32, Uuid } from './common.ts';
import { Capability } from './agents.ts';


export const TASK_STATUSES = ['pending', 'assigned', 'running', 'completed', 'failed', 'timeout', 'retrying', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted', 'phi'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];
export const STRATEGIES = ['capability_match', 'round_robin', 'least_loaded', 'best_performance'] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const PRIORITY_ALIASES = { critical: 10, high: 8, medium: 5, low: 2 } as const;

export const Priority = Type.Union([Type.Integer({ minimum: 1, maximum: 10 }), Type.Enum(['critical', 'high', 'medium', 'low'] as const)], { description: '1–10 (higher first) or critical=10, high=8, medium=5, low=2' });
export const TaskType = Type.String({ pattern: '^[a-z][a-z0-9_.-]{0,63}$' });

export const CreateTaskBody = Type.Object({
  task_type: TaskType,
  parameters: Type.Optional(JsonObject),
  priority: Type.Optional(Priority),
  required_capabilities: Type.Optional(Type.Array(Capability, { minItems: 1, maxItems: 50, uniqueItems: true })),
  pipeline_id: Type.Optional(Uuid),
  stage: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_.-]{0,63}$' })),
  deadline: Type.Optional(Type.String({ format: 'date-time' })),
  timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7200 })),
  max_retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  dependencies: Type.Optional(Type.Array(Uuid, { maxItems: 100, uniqueItems: true })),
  data_classification: Type.Optional(Type.Enum(CLASSIFICATIONS)),
  metadata: Type.Optional(JsonObject),
  strategy: Type.Optional(Type.Enum(STRATEGIES)),
}, { additionalProperties: false });
export type CreateTaskInput = Static<typeof CreateTaskBody>;

export const BatchCreateBody = Type.Object({
  tasks: Type.Array(CreateTaskBody, { minItems: 1, maxItems: 1000 }),
}, { additionalProperties: false });

export const ListTasksQuery = Type.Object({
  status: Type.Optional(Type.Enum(TASK_STATUSES)),
  task_type: Type.Optional(TaskType),
  pipeline_id: Type.Optional(Uuid),
  agent_id: Type.Optional(Id),
  dead_letter: Type.Optional(Type.Boolean()),
  ...ListQuery,
  sort: Type.Optional(Type.String({ pattern: '^(created_at|updated_at|priority|status|deadline|task_type):(asc|desc)$' })),
}, { additionalProperties: false });

export const DelegateBody = Type.Object({
  agent_id: Type.Optional(Id),
  strategy: Type.Optional(Type.Enum(STRATEGIES)),
}, { additionalProperties: false });

export const CancelBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });

export const ClaimBody = Type.Object({
  max: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1 })),
  wait_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 30000, default: 0 })),
}, { additionalProperties: false });

export const Attempt = Type.Integer({ minimum: 1, maximum: MAX_INT32 });

export const ProgressBody = Type.Object({
  attempt: Attempt,
  progress: Type.Number({ minimum: 0, maximum: 1 }),
  message: Type.Optional(Type.String({ maxLength: 1000 })),
}, { additionalProperties: false });

export const CompleteBody = Type.Object({
  attempt: Attempt,
  result: Type.Unknown(),
  metadata: Type.Optional(Type.Object({
    processing_time: Type.Optional(Type.Number({ minimum: 0 })),
    model_version: Type.Optional(Type.String({ maxLength: 200 })),
  }, { additionalProperties: true })),
}, { additionalProperties: false });

export const TaskErrorBody = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 100 }),
  message: Type.String({ maxLength: 2000 }),
  retryable: Type.Optional(Type.Boolean({ default: true })),
  details: Type.Optional(JsonObject),
}, { additionalProperties: false });
export type TaskErrorInput = Static<typeof TaskErrorBody>;

export const FailBody = Type.Object({ attempt: Attempt, error: TaskErrorBody }, { additionalProperties: false });

/** Known task types → the capability they require (SPEC §6). */
export const TASK_TYPE_CAPABILITIES: Readonly<Record<string, string>> = {
  text_preprocessing: 'text_processing',
  bias_detection: 'bias_detection',
  emotion_analysis: 'emotion_analysis',
  sentiment_analysis: 'sentiment_analysis',
  empathy_scoring: 'empathy_scoring',
  therapeutic_recommendations: 'therapeutic_recommendations',
  report_generation: 'report_generation',
  pii_detection: 'pii_detection',
  ingestion: 'ingestion',
  standardization: 'standardization',
  validation: 'validation',
  processing: 'processing',
  quality_assessment: 'quality_assessment',
  export: 'export',
};
