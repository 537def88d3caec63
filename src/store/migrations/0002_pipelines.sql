-- Pipelines (SPEC §7): runs, their stages, and templates (built-in and custom DAGs).
-- input_data, context and output are stored as text produced by the field codec (encrypted
-- for phi, bound to table/column/row). patient_id / session_id from the context are searchable
-- through blind indexes (keyed hashes), never stored in clear.

CREATE TABLE pipeline_templates (
  name text PRIMARY KEY,
  description text NOT NULL DEFAULT '',
  stages jsonb NOT NULL,
  builtin boolean NOT NULL DEFAULT false,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pipelines (
  pipeline_id uuid PRIMARY KEY,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  template text NOT NULL,
  status text NOT NULL CHECK (status IN ('created', 'running', 'paused', 'completed', 'partially_completed', 'failed', 'cancelled')),
  error_strategy text NOT NULL DEFAULT 'stop' CHECK (error_strategy IN ('stop', 'continue')),
  priority integer NOT NULL DEFAULT 5,
  data_classification text NOT NULL DEFAULT 'phi',
  input_data text NOT NULL,
  context text NOT NULL,
  patient_bidx text,
  session_bidx text,
  parameters jsonb NOT NULL DEFAULT '{}',
  metadata jsonb NOT NULL DEFAULT '{}',
  output text,
  error jsonb,
  estimated_duration_s real,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pipelines_status_created ON pipelines (status, created_at);
CREATE INDEX pipelines_template_created ON pipelines (template, created_at);
CREATE INDEX pipelines_created ON pipelines (created_at);
CREATE INDEX pipelines_patient ON pipelines (patient_bidx) WHERE patient_bidx IS NOT NULL;
CREATE INDEX pipelines_session ON pipelines (session_bidx) WHERE session_bidx IS NOT NULL;

CREATE TABLE pipeline_stages (
  pipeline_id uuid NOT NULL REFERENCES pipelines (pipeline_id) ON DELETE CASCADE,
  stage text NOT NULL,
  position integer NOT NULL,
  name text NOT NULL,
  task_type text NOT NULL,
  depends_on text[] NOT NULL DEFAULT '{}',
  status text NOT NULL CHECK (status IN ('pending', 'ready', 'running', 'completed', 'failed', 'skipped')),
  task_id uuid,
  previous_task_ids uuid[] NOT NULL DEFAULT '{}',
  run_count integer NOT NULL DEFAULT 0,
  required_capabilities text[],
  timeout_seconds integer,
  max_retries integer,
  config jsonb NOT NULL DEFAULT '{}',
  progress real NOT NULL DEFAULT 0,
  error jsonb,
  started_at timestamptz,
  completed_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pipeline_id, stage)
);
CREATE INDEX pipeline_stages_task ON pipeline_stages (task_id) WHERE task_id IS NOT NULL;
