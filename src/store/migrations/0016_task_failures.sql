-- Failures counted apart from deliveries (SPEC §6: retries only for retryable failures and
-- timeouts). `attempt` goes up with every lease — it is the fencing token — including leases an
-- agent turned down (task:rejected) or that were requeued because their agent was removed;
-- deciding retries on it made every refusal consume one of the task's retries. `failures`
-- counts the failures and timeouts recorded for the task; a failure is retried while
-- failures <= max_retries (src/tasks/task-service.ts, failRow).
ALTER TABLE tasks ADD COLUMN failures integer NOT NULL DEFAULT 0;

-- Tasks still in flight get the failures their history records (finished ones never retry).
UPDATE tasks t SET failures = (SELECT count(*)::int FROM task_events e WHERE e.task_id = t.task_id AND e.to_status IN ('failed', 'timeout'))
WHERE t.status NOT IN ('completed', 'cancelled') AND t.attempt > 1;
