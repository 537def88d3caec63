-- Core tables: users and credentials, signing keys, agents, tasks and their history, idempotency.
-- Classified values (task parameters/results, secrets) are stored as text produced by the
-- field cipher: ciphertext for phi/restricted, JSON for lower classifications.

CREATE TABLE users (
  user_id uuid PRIMARY KEY,
  username text NOT NULL,
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('worker', 'supervisor', 'admin', 'system')),
  disabled boolean NOT NULL DEFAULT false,
  mfa_enabled boolean NOT NULL DEFAULT false,
  mfa_secret text,
  mfa_pending_secret text,
  mfa_last_step bigint,
  recovery_codes jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE UNIQUE INDEX users_username_live ON users (lower(username)) WHERE deleted_at IS NULL;

CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  private_key text NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  retired_at timestamptz,
  expires_at timestamptz
);

CREATE TABLE refresh_tokens (
  jti uuid PRIMARY KEY,
  family_id uuid NOT NULL,
  subject_type text NOT NULL CHECK (subject_type IN ('user', 'agent')),
  subject_id text NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject_type, subject_id);

CREATE TABLE revoked_tokens (
  jti uuid PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

CREATE TABLE agents (
  agent_id text PRIMARY KEY,
  name text NOT NULL,
  type text NOT NULL,
  capabilities text[] NOT NULL,
  version text NOT NULL,
  endpoint_url text,
  health_check_url text,
  max_concurrent_tasks integer NOT NULL DEFAULT 5,
  metadata jsonb NOT NULL DEFAULT '{}',
  tags text[] NOT NULL DEFAULT '{}',
  role text NOT NULL DEFAULT 'worker' CHECK (role IN ('worker', 'supervisor', 'admin', 'system')),
  status text NOT NULL DEFAULT 'active',
  draining boolean NOT NULL DEFAULT false,
  builtin boolean NOT NULL DEFAULT false,
  api_key_hash text NOT NULL,
  registered_by text,
  tasks_completed integer NOT NULL DEFAULT 0,
  tasks_failed integer NOT NULL DEFAULT 0,
  total_response_ms double precision NOT NULL DEFAULT 0,
  last_seen_at timestamptz,
  registered_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX agents_capabilities ON agents USING gin (capabilities);
CREATE INDEX agents_status ON agents (status) WHERE deleted_at IS NULL;

CREATE TABLE tasks (
  task_id uuid PRIMARY KEY,
  task_type text NOT NULL,
  status text NOT NULL,
  priority integer NOT NULL,
  required_capabilities text[] NOT NULL,
  parameters text NOT NULL,
  result text,
  error jsonb,
  data_classification text NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}',
  pipeline_id uuid,
  stage text,
  deadline timestamptz,
  timeout_seconds integer NOT NULL,
  max_retries integer NOT NULL,
  dependencies uuid[] NOT NULL DEFAULT '{}',
  pending_deps integer NOT NULL DEFAULT 0,
  strategy text,
  attempt integer NOT NULL DEFAULT 0,
  assigned_agent text,
  lease_expires_at timestamptz,
  progress real NOT NULL DEFAULT 0,
  progress_message text,
  dead_letter boolean NOT NULL DEFAULT false,
  retry_at timestamptz,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  assigned_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX tasks_pending ON tasks (priority DESC, created_at) WHERE status = 'pending';
CREATE INDEX tasks_status_created ON tasks (status, created_at);
CREATE INDEX tasks_agent_live ON tasks (assigned_agent) WHERE status IN ('assigned', 'running');
CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status IN ('assigned', 'running');
CREATE INDEX tasks_retry ON tasks (retry_at) WHERE status = 'retrying';
CREATE INDEX tasks_pipeline ON tasks (pipeline_id) WHERE pipeline_id IS NOT NULL;
CREATE INDEX tasks_dependencies ON tasks USING gin (dependencies);
CREATE INDEX tasks_dead_letter ON tasks (updated_at) WHERE dead_letter;

CREATE TABLE task_events (
  event_id bigserial PRIMARY KEY,
  task_id uuid NOT NULL,
  at timestamptz NOT NULL DEFAULT now(),
  from_status text,
  to_status text NOT NULL,
  attempt integer NOT NULL,
  agent_id text,
  reason text
);
CREATE INDEX task_events_task ON task_events (task_id, event_id);

CREATE TABLE idempotency_keys (
  principal text NOT NULL,
  key text NOT NULL,
  method text NOT NULL,
  path text NOT NULL,
  request_hash text NOT NULL,
  state text NOT NULL CHECK (state IN ('in_progress', 'done')),
  response_status integer,
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_expires ON idempotency_keys (expires_at);
