-- Most tasks have no dependencies; indexing their empty arrays made every insert and status
-- change maintain a GIN entry for nothing. Only tasks that wait on others are indexed now
-- (queries add `dependencies <> '{}'` so the planner can use it).
DROP INDEX tasks_dependencies;
CREATE INDEX tasks_dependencies ON tasks USING gin (dependencies) WHERE dependencies <> '{}';
