-- Security (SPEC §4.1, §4.2, §9): the append-only, hash-chained audit log; security alerts;
-- agent enrollment tokens.
--
-- audit_log is append-only for the application: triggers refuse every UPDATE, DELETE and
-- TRUNCATE. The single exception is the retention purge, which goes through
-- audit_log_purge(cutoff): it sets the transaction-local flag `mcp.audit_purge`, and the
-- trigger lets a DELETE through only while that flag is on AND the row is older than the
-- hard floor of 2555 days (7 years) measured by the database clock — so even code that sets
-- the flag itself cannot remove anything younger than 7 years. The purge removes a prefix of
-- the chain (by seq) and records the last removed (seq, hash) in audit_anchor, so the
-- remaining chain still verifies from that anchor. audit_anchor is writable only inside the
-- purge function the same way.
-- (A database superuser can always disable triggers; the keyed hash chain is what detects
-- such edits: GET /api/v1/audit/verify reports the first broken link.)

CREATE TABLE audit_log (
  seq bigserial PRIMARY KEY,
  audit_id uuid NOT NULL UNIQUE,
  -- the ISO-8601 timestamp exactly as hashed (text, so it reads back byte for byte) ...
  ts text NOT NULL,
  -- ... and the same instant as timestamptz, for range filters and retention.
  at timestamptz NOT NULL,
  actor jsonb NOT NULL,
  action text NOT NULL,
  resource_type text NOT NULL,
  resource_id text,
  fields jsonb NOT NULL DEFAULT '[]',
  data_classification text,
  outcome text NOT NULL,
  request_id text,
  risk_level text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log ((actor ->> 'id'), seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id, seq);

CREATE TABLE audit_anchor (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  seq bigint NOT NULL,
  hash text NOT NULL,
  purged_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'ROW' AND current_setting('mcp.audit_purge', true) = 'on' THEN
    IF TG_TABLE_NAME = 'audit_anchor' THEN
      IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
      RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
      IF OLD.at < now() - interval '2555 days' THEN RETURN OLD; END IF;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_anchor_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_anchor
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();

-- Removes the longest prefix of the chain whose entries are all older than `cutoff` (clamped to
-- the 2555-day floor), records the new anchor, and returns the number of rows removed.
-- 7_272_003 is the advisory lock that serialises appends to the chain (AuditLog).
CREATE FUNCTION audit_log_purge(cutoff timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
  effective timestamptz := least(cutoff, now() - interval '2555 days');
  last_seq bigint;
  last_hash text;
  removed integer;
BEGIN
  PERFORM pg_advisory_xact_lock(7272003);
  SELECT l.seq, l.hash INTO last_seq, last_hash FROM audit_log l
   WHERE l.seq < COALESCE((SELECT min(y.seq) FROM audit_log y WHERE y.at >= effective), 9223372036854775807)
   ORDER BY l.seq DESC LIMIT 1;
  IF last_seq IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM set_config('mcp.audit_purge', 'on', true);
  DELETE FROM audit_log WHERE seq <= last_seq;
  GET DIAGNOSTICS removed = ROW_COUNT;
  INSERT INTO audit_anchor (id, seq, hash, purged_at) VALUES (true, last_seq, last_hash, now())
    ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, purged_at = EXCLUDED.purged_at;
  PERFORM set_config('mcp.audit_purge', 'off', true);
  RETURN removed;
END
$$;

CREATE TABLE security_alerts (
  alert_id uuid PRIMARY KEY,
  rule text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  message text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}',
  principal text,
  created_at timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz,
  acknowledged_by text
);
CREATE INDEX security_alerts_created ON security_alerts (created_at);
CREATE INDEX security_alerts_open ON security_alerts (created_at) WHERE acknowledged_at IS NULL;

-- Enrollment tokens (SPEC §4.2): only a SHA-256 of the token is stored.
CREATE TABLE enrollment_tokens (
  token_id uuid PRIMARY KEY,
  token_hash text NOT NULL UNIQUE,
  uses_left integer NOT NULL CHECK (uses_left >= 0),
  uses_total integer NOT NULL,
  role text NOT NULL CHECK (role IN ('worker', 'supervisor', 'admin', 'system')),
  expires_at timestamptz NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX enrollment_tokens_expires ON enrollment_tokens (expires_at);
