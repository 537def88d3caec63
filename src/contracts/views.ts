/**
 * Response shapes of the REST API and the `task:delegate` payload: one definition that the
 * server builds (tasks/, agents/, pipelines/) and the SDK returns to its users.
 */
import type { TaskStatus } from './tasks.ts';
import type { AgentStatus } from './agents.ts';
import type { PipelineStatus, StageStatus } from './pipelines.ts';

export interface TaskErrorView {
  code: string;
  message: string;
  retryable: boolean;
  details?: unknown;
}

export interface TaskView {
  task_id: string;
  task_type: string;
  status: TaskStatus;
  priority: number;
  required_capabilities: string[];
  data_classification: string;
  pipeline_id: string | null;
  stage: string | null;
  deadline: string | null;
  timeout_seconds: number;
  max_retries: number;
  dependencies: string[];
  strategy: string | null;
  attempt: number;
  assigned_agent: string | null;
  progress: number;
  progress_message: string | null;
  error: TaskErrorView | null;
  dead_letter: boolean;
  retry_at: string | null;
  lease_expires_at: string | null;
  metadata: Record<string, unknown>;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  assigned_at: string | null;
  started_at: string | null;
  completed_at: string | null;
}

export interface TaskHistoryEntry {
  from_status: string | null;
  to_status: string;
  attempt: number;
  agent_id: string | null;
  reason: string | null;
  at: string;
}

export interface TaskDetailView extends TaskView {
  parameters: unknown;
  result: unknown;
  history: TaskHistoryEntry[];
}

/** What an agent receives in `task:delegate` (SPEC §8) and from `POST /tasks/claim`. */
export interface DeliveredTask {
  task_id: string;
  task_type: string;
  parameters: unknown;
  priority: number;
  deadline: string | null;
  pipeline_id: string | null;
  stage: string | null;
  attempt: number;
  required_capabilities: string[];
  data_classification: string;
  metadata: { assigned_at: string; timeout_seconds: number; lease_expires_at: string };
}

export interface AgentView {
  agent_id: string;
  name: string;
  type: string;
  capabilities: string[];
  version: string;
  endpoint_url: string | null;
  health_check_url: string | null;
  max_concurrent_tasks: number;
  metadata: Record<string, unknown>;
  tags: string[];
  role: 'worker' | 'supervisor' | 'admin' | 'system';
  status: AgentStatus;
  draining: boolean;
  builtin: boolean;
  registered_at: string;
  updated_at: string;
  last_heartbeat: string | null;
  load: number;
  score: number;
}

export interface StageView {
  stage: string;
  name: string;
  task_type: string;
  depends_on: string[];
  status: StageStatus;
  task_id: string | null;
  runs: number;
  previous_task_ids: string[];
  started_at: string | null;
  completed_at: string | null;
  progress: number;
  error: unknown;
}

export interface PipelineView {
  pipeline_id: string;
  name: string;
  description: string;
  template: string;
  status: PipelineStatus;
  error_strategy: string;
  priority: number;
  progress: number;
  error: unknown;
  created_by: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  updated_at: string;
  estimated_duration: number | null;
}

export interface PipelineDetailView extends PipelineView {
  current_stage: string | null;
  stages: StageView[];
  estimated_completion: string | null;
  context: unknown;
  parameters: Record<string, unknown>;
  metadata: Record<string, unknown>;
  output?: unknown;
}

export interface UserView {
  user_id: string;
  username: string;
  role: 'worker' | 'supervisor' | 'admin' | 'system';
  disabled: boolean;
  mfa_enabled: boolean;
  created_at: string;
  updated_at: string;
}

/** An enrollment token as `GET /agents/enrollment-tokens` lists it: what it grants and how much is left, never the secret. */
export interface EnrollmentTokenView {
  token_id: string;
  role: 'worker' | 'supervisor' | 'admin' | 'system';
  uses_left: number;
  uses_total: number;
  expires_at: string;
  created_by: string | null;
  created_at: string;
  revoked_at: string | null;
  /** `active` (usable now), `used_up`, `expired` or `revoked` (the first that applies, from the end). */
  status: 'active' | 'used_up' | 'expired' | 'revoked';
}
