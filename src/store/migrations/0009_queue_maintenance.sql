-- Queue tables churn: a task row is rewritten two or three times in its life and audit_pending
-- rows are deleted once chained. With autovacuum's defaults (a vacuum after 20 % of the table
-- is dead) a large tasks table would pile up dead entries in its pending-task index between
-- runs, and every statement reading that index would visit them. Vacuum these early instead.
-- (Where autovacuum is off, and on PGlite, the leader vacuums them: src/store/table-maintenance.ts.)
ALTER TABLE tasks SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
ALTER TABLE audit_pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

-- The chainer deletes the pending entries it chained, a few hundred per statement: the guard of
-- 0008 checked them one row at a time (a trigger call and a lookup per row). The same rule is
-- now checked once per DELETE statement over the deleted rows; UPDATE stays refused per row.
CREATE FUNCTION audit_pending_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM gone g WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.audit_id = g.audit_id)) THEN
    RAISE EXCEPTION 'audit log is append-only: DELETE on audit_pending refused (an entry is not in the chain yet)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NULL;
END
$$;

DROP TRIGGER audit_pending_no_update ON audit_pending;
CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
  FOR EACH ROW EXECUTE FUNCTION audit_pending_guard();
CREATE TRIGGER audit_pending_delete_chained AFTER DELETE ON audit_pending
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_delete_guard();
