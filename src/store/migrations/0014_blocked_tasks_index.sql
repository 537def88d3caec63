-- Tasks waiting for their dependencies, by age: the leader's dependency repair
-- (TaskService.repairDependencies) reads the recent ones every sweep without scanning the queue.
CREATE INDEX tasks_blocked ON tasks (created_at) WHERE status = 'pending' AND pending_deps > 0;
