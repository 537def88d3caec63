-- One audit entry may name many resources of one type: a batch create, the deliveries of a
-- dispatch flush to one agent, a group of results written together. `resource_ids` lists them
-- (NULL for single-resource entries, which keep using `resource_id`). Covered by the chain's
-- hash like every other body field; searchable through the GIN index.
ALTER TABLE audit_log ADD COLUMN resource_ids text[];
CREATE INDEX audit_log_resource_ids ON audit_log USING gin (resource_ids) WHERE resource_ids IS NOT NULL;
