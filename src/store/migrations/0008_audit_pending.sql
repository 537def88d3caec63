-- Audit entries are written in two steps so that appenders never wait for each other:
--
-- 1. The caller's transaction inserts the entry into audit_pending (a plain insert: no lock on
--    the chain's head, so an audited transaction commits as soon as it is done instead of
--    queueing behind every other audited transaction's commit). `body` is the entry's canonical
--    JSON exactly as it will be hashed. The entry is durable — and visible to auditors, who
--    chain before they read — the moment the caller commits; rolled back, it never existed.
-- 2. The chainer (AuditLog, any process; one at a time through the head row's lock) moves
--    pending entries into audit_log: it chains them after audit_head, inserts them (seq order
--    is chain order) and deletes them from audit_pending in one transaction.
--
-- audit_pending is as protected as audit_log: UPDATE and TRUNCATE are refused, and a row may be
-- deleted only once an audit_log row with its audit_id exists (i.e. it is in the chain).
CREATE TABLE audit_pending (
  id bigserial PRIMARY KEY,
  audit_id uuid NOT NULL,
  body text NOT NULL
);

CREATE FUNCTION audit_pending_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'ROW' AND TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_log WHERE audit_id = OLD.audit_id) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_pending_no_update BEFORE UPDATE OR DELETE ON audit_pending
  FOR EACH ROW EXECUTE FUNCTION audit_pending_guard();
CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
  FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_guard();
