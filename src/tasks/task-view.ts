/** Maps task rows to the API's JSON (snake_case, ISO timestamps). */
import type { TaskRow, HistoryEntry } from './task-repository.ts';
import type { TaskHistoryEntry, TaskView as TaskSummary } from '../contracts/views.ts';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export type { TaskView as TaskSummary } from '../contracts/views.ts';

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

export function historyView(h: HistoryEntry[]): TaskHistoryEntry[] {
  return h.map((e) => ({ from_status: e.from_status, to_status: e.to_status, attempt: e.attempt, agent_id: e.agent_id, reason: e.reason, at: e.at.toISOString() }));
}
