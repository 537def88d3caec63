-- Tasks ready to run (pending, no unfinished dependency), by capability set first. A dispatch
-- round or an assignment at insert asks for tasks that an agent's capabilities cover; walking
-- the queue by priority filtered those by capability row by row, so a backlog that no connected
-- agent could serve (its agents down) was read in full each time: with 50,000 such tasks, a
-- create that could run at once took 90 ms and a dispatch round 15 ms. Now the (capability set,
-- priority) pairs waiting are found with a loose index scan (one probe each), and only the sets
-- an agent covers are read, by range scans in dispatch order (src/tasks/queue-head.ts).
-- Tasks with a deadline are also indexed by it, apart: most tasks have none, and those never
-- touch that index. tasks_pending_capped served only the old queue head; tasks_pending_age still
-- serves counts by priority (queue positions).
CREATE INDEX tasks_ready ON tasks (required_capabilities, priority, created_at, deadline) WHERE status = 'pending' AND pending_deps = 0;
CREATE INDEX tasks_ready_deadline ON tasks (required_capabilities, priority, deadline, created_at) WHERE status = 'pending' AND pending_deps = 0 AND deadline IS NOT NULL;
DROP INDEX tasks_pending_capped;
