-- A first form of 0011 keyed these indexes by the capability array itself, which a task needing
-- 50 capabilities of 64 characters could not be inserted into (a btree entry holds at most
-- 2,704 bytes), and an upgrade could fail building it over such tasks. 0011 now creates them
-- keyed by the array's hash; a database that applied the first form gets them rebuilt here (on
-- any other this rebuilds the same indexes).
DROP INDEX IF EXISTS tasks_ready;
DROP INDEX IF EXISTS tasks_ready_deadline;
CREATE INDEX tasks_ready ON tasks (hash_array_extended(required_capabilities, 0), priority, created_at, deadline) WHERE status = 'pending' AND pending_deps = 0;
CREATE INDEX tasks_ready_deadline ON tasks (hash_array_extended(required_capabilities, 0), priority, deadline, created_at) WHERE status = 'pending' AND pending_deps = 0 AND deadline IS NOT NULL;
