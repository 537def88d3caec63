/**
 * Wire types the SDK speaks (SPEC §4–§8). Request bodies come from `src/contracts` (the same
 * schemas the server validates with); response shapes are declared here so that the SDK does not
 * depend on server internals.
 */
import type { CreateTaskInput, TaskErrorInput, TaskStatus } from '../contracts/tasks.ts';
import type { RegisterAgentInput, UpdateAgentInput, HeartbeatInput, AgentStatus } from '../contracts/agents.ts';
import type { CreatePipelineInput, CreateTemplateInput, OutputFormat, PipelineStatus, StageStatus } from '../contracts/pipelines.ts';

export type { CreateTaskInput, TaskErrorInput, TaskStatus, RegisterAgentInput, UpdateAgentInput, HeartbeatInput, AgentStatus, CreatePipelineInput, CreateTemplateInput, OutputFormat, PipelineStatus, StageStatus };

export type Role = 'worker' | 'supervisor' | 'admin' | 'system';

/** The server's response shapes (src/contracts/views.ts), under the SDK's names. */
export type { TaskView as Task, TaskDetailView as TaskDetail, DeliveredTask as DelegatedTask, StageView as PipelineStage, PipelineView as Pipeline, PipelineDetailView as PipelineDetail, UserView as PublicUser, EnrollmentTokenView as EnrollmentTokenSummary } from '../contracts/views.ts';
import type { AgentView } from '../contracts/views.ts';

/** An agent as listed; `GET /agents/{id}` adds live tasks and performance figures. */
export interface Agent extends AgentView {
  current_tasks?: unknown;
  performance_metrics?: Record<string, unknown>;
}

export interface Pagination {
  total: number;
  limit: number;
  offset: number;
  has_more: boolean;
  next_offset: number | null;
}

export interface ListOptions {
  limit?: number;
  offset?: number;
}

/** `POST /agents/enrollment-tokens`: the token is shown this once. */
export interface IssuedEnrollmentToken {
  enrollment_token: string;
  token_id: string;
  expires_at: string;
  uses: number;
  role: Role;
}


export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface LoginResponse extends TokenPair {
  /**
   * `mfa_setup_required`: the role must enrol MFA and the user has not; from `mfa_setup_deadline`
   * on, only MFA setup/verify, /auth/me and logout answer them (401 MFA_REQUIRED elsewhere).
   */
  user: { user_id: string; username: string; role: Role; mfa_enabled: boolean; mfa_setup_required: boolean; mfa_setup_deadline: string | null };
}

export interface MfaSetup {
  secret: string;
  otpauth_url: string;
  recovery_codes: string[];
}



export interface RegisteredAgent extends TokenPair {
  agent_id: string;
  status: 'active';
  registered_at: string;
  api_key: string;
  permissions: string[];
}

export interface TaskError {
  code: string;
  message: string;
  retryable?: boolean;
  details?: Record<string, unknown>;
}



export interface CreatedTask {
  task_id: string;
  status: 'pending';
  created_at: string;
  queue_position: number;
}

/** What an agent receives in `task:delegate` (SPEC §8) and from `POST /tasks/claim`. */

export interface TaskListQuery extends ListOptions {
  status?: TaskStatus;
  task_type?: string;
  pipeline_id?: string;
  agent_id?: string;
  dead_letter?: boolean;
  sort?: string;
}

export interface AgentListQuery extends ListOptions {
  status?: AgentStatus;
  type?: string;
  capability?: string;
}




export interface PipelineListQuery extends ListOptions {
  status?: PipelineStatus;
  template?: string;
  patient_id?: string;
  session_id?: string;
  sort?: string;
}

export interface AuditEntry {
  audit_id: string;
  timestamp: string;
  actor: { type: string; id: string | null; role: string | null; ip: string | null; user_agent: string | null };
  action: string;
  resource_type: string;
  resource_id: string | null;
  /** Every resource of an entry covering many (batch create, delivery flush, result group). */
  resource_ids?: string[];
  fields: string[];
  data_classification: string | null;
  outcome: string;
  request_id: string | null;
  risk_level: string;
  [k: string]: unknown;
}

export interface AuditQuery extends ListOptions {
  actor?: string;
  actor_type?: 'user' | 'agent' | 'system' | 'anonymous';
  action?: string;
  resource_type?: string;
  resource_id?: string;
  outcome?: string;
  from?: string;
  to?: string;
  sort?: 'timestamp:asc' | 'timestamp:desc';
}

export interface AuditVerification {
  ok: boolean;
  checked?: number;
  first_broken?: unknown;
  [k: string]: unknown;
}

export interface Health {
  status: 'healthy' | 'degraded' | 'unhealthy';
  timestamp: string;
  version: string;
  uptime: number;
  checks?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface RequestOptions {
  /** Sent as `Idempotency-Key` (POSTs that create something; SPEC §2). */
  idempotencyKey?: string;
  signal?: AbortSignal;
}
