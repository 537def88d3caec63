-- Dispatch rounds read the head of the queue per priority level from two index range scans
-- instead of sorting every pending task (src/tasks/queue-head.ts): tasks that reached the aging
-- cap in (deadline, created_at) order, younger ones in (created_at, deadline) order. The second
-- index also answers what tasks_pending did (pending by priority), which it replaces.
CREATE INDEX tasks_pending_age ON tasks (priority, created_at, deadline) WHERE status = 'pending';
CREATE INDEX tasks_pending_capped ON tasks (priority, deadline, created_at) WHERE status = 'pending';
DROP INDEX tasks_pending;
