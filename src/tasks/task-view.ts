/** Maps task rows to the API's JSON (snake_case, ISO timestamps). */
import type { TaskRow, HistoryEntry } from './task-repository.ts';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export interface TaskSummary {
  task_id: string;
  task_type: string;
  status: string;
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
  error: TaskRow['error'];
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

export function taskSummary(r: TaskRow): TaskSummary {
  return {
    task_id: r.task_id,
    task_type: r.task_type,
    status: r.status,
    priority: r.priority,
    required_capabilities: r.required_capabilities,
    data_classification: r.data_classification,
    pipeline_id: r.pipeline_id,
    stage: r.stage,
    deadline: iso(r.deadline),
    timeout_seconds: r.timeout_seconds,
    max_retries: r.max_retries,
    dependencies: r.dependencies,
    strategy: r.strategy,
    attempt: r.attempt,
    assigned_agent: r.assigned_agent,
    progress: Number(r.progress.toFixed(4)),
    progress_message: r.progress_message,
    error: r.error,
    dead_letter: r.dead_letter,
    retry_at: iso(r.retry_at),
    lease_expires_at: iso(r.lease_expires_at),
    metadata: r.metadata,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    assigned_at: iso(r.assigned_at),
    started_at: iso(r.started_at),
    completed_at: iso(r.completed_at),
  };
}

export function historyView(h: HistoryEntry[]): Array<{ from_status: string | null; to_status: string; attempt: number; agent_id: string | null; reason: string | null; at: string }> {
  return h.map((e) => ({ from_status: e.from_status, to_status: e.to_status, attempt: e.attempt, agent_id: e.agent_id, reason: e.reason, at: e.at.toISOString() }));
}
