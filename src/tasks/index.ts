/**
 * tasks: the task lifecycle — creation, the status machine, leases fenced by attempt, retries
 * with backoff, dead letter — and (assignment-engine) choosing an agent and delivering to it.
 * Transport-free: http/ and realtime/ call these services.
 */
export { TaskService, noOutcomes, type TaskServiceOptions, type TaskDetail, type OutcomeSink } from './task-service.ts';
export { TaskRepository, type TaskRow, type NewTask, type TaskListFilter } from './task-repository.ts';
export { taskSummary, type TaskSummary } from './task-view.ts';
export { canTransition, backoffMs, TRANSITIONS } from './task-status.ts';
export { AssignmentEngine, ENGINE_CHANNELS, type AgentSlot, type DeliveredTask, type AssignmentEngineOptions } from './assignment-engine.ts';
export { OrphanLeaseSweeper, AGENT_SOCKET_PRESENCE } from './orphan-lease-sweeper.ts';
