-- The indexes of 0011 keyed ready tasks by their capability array itself, and a btree entry
-- cannot exceed about a third of a page: a task needing 50 capabilities of 64 characters (what
-- the API accepts) could not be inserted. They are keyed by a 64-bit hash of the array instead;
-- the statements that read them take each set's capabilities from its first row, and check
-- every row they deliver against the agents' capabilities (src/tasks/ready-tasks.ts).
DROP INDEX tasks_ready;
DROP INDEX tasks_ready_deadline;
CREATE INDEX tasks_ready ON tasks (hash_array_extended(required_capabilities, 0), priority, created_at, deadline) WHERE status = 'pending' AND pending_deps = 0;
CREATE INDEX tasks_ready_deadline ON tasks (hash_array_extended(required_capabilities, 0), priority, deadline, created_at) WHERE status = 'pending' AND pending_deps = 0 AND deadline IS NOT NULL;
