-- Tasks ready to run (pending, no unfinished dependency), by capability set first. A dispatch
-- round or an assignment at insert asks for tasks that an agent's capabilities cover; walking
-- the queue by priority filtered those by capability row by row, so a backlog that no connected
-- agent could serve (its agents down) was read in full each time: with 50,000 such tasks, a
-- create that could run at once took 90 ms and a dispatch round 15 ms. Now the (capability set,
-- priority) pairs waiting are found with a loose index scan (one probe each), and only the sets
-- an agent covers are read, by range scans in dispatch order (src/tasks/ready-tasks.ts).
-- The set is keyed by a 64-bit hash of its array: a btree entry holds at most 2,704 bytes, less
-- than a set of 50 capabilities of 64 characters (what the API accepts) may take.
-- Tasks with a deadline are also indexed by it, apart: most tasks have none, and those never
-- touch that index. tasks_pending_capped served only the old queue head; tasks_pending_age still
-- serves counts by priority (queue positions).
CREATE INDEX tasks_ready ON tasks (hash_array_extended(required_capabilities, 0), priority, created_at, deadline) WHERE status = 'pending' AND pending_deps = 0;
CREATE INDEX tasks_ready_deadline ON tasks (hash_array_extended(required_capabilities, 0), priority, deadline, created_at) WHERE status = 'pending' AND pending_deps = 0 AND deadline IS NOT NULL;
DROP INDEX tasks_pending_capped;
