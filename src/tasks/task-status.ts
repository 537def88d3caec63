/**
 * The task status machine (SPEC §6) and retry backoff. Transitions not listed are refused with
 * INVALID_STATUS_TRANSITION. `assigned|running → pending` is the engine's requeue (rejected
 * delivery, deleted agent); `assigned → completed|failed` accepts a result sent without an
 * explicit accept (the seed's client does that); `pending → failed` is a task waiting for a
 * dependency that was cancelled or dead-lettered (it can never run: DEPENDENCY_FAILED).
 */
import type { TaskStatus } from '../contracts/tasks.ts';

export const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = {
  pending: ['assigned', 'cancelled', 'failed'],
  assigned: ['running', 'completed', 'failed', 'timeout', 'pending', 'cancelled'],
  running: ['completed', 'failed', 'timeout', 'pending', 'cancelled'],
  failed: ['retrying', 'pending'],
  timeout: ['retrying', 'pending', 'failed'], // failed: its retries are exhausted (SPEC §6: stays failed, dead_letter)
  retrying: ['pending', 'cancelled'],
  completed: [],
  cancelled: [],
};

export const FINAL_STATUSES: readonly TaskStatus[] = ['completed', 'cancelled'];
export const LEASED_STATUSES: readonly TaskStatus[] = ['assigned', 'running'];
export const CANCELLABLE_STATUSES: readonly TaskStatus[] = ['pending', 'assigned', 'running', 'retrying'];
export const RETRYABLE_BY_OPERATOR: readonly TaskStatus[] = ['failed', 'timeout'];

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Exponential backoff with full jitter on the upper half: min(base × 2^(attempt−1), cap),
 * then a uniform draw in [d/2, d] so that a herd of failures spreads out.
 */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const d = Math.min(baseMs * 2 ** Math.max(0, attempt - 1), capMs);
  return Math.round(d / 2 + random() * (d / 2));
}
