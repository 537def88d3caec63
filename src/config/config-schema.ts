/**
 * The one configuration schema (ARCHITECTURE §6). Every setting is a row: its path in the
 * resolved config, its environment variable, its TypeBox schema, default and description.
 * docs/config.md and `mcp config print` are generated from this table.
 */
import Type, { type TSchema } from 'typebox';

export interface ConfigField {
  path: string;
  env: string;
  schema: TSchema;
  default?: unknown;
  description: string;
  secret?: boolean;
}

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const Seconds = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)));
const Role = Type.Union(['worker', 'supervisor', 'admin', 'system'].map((r) => Type.Literal(r)));
const AiProviderName = Type.Union(['local', 'openai', 'google', 'flask'].map((p) => Type.Literal(p)));
const AiRoute = Type.Array(AiProviderName, { minItems: 1, maxItems: 4 });
const Millis = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
const Strategy = Type.Union(['capability_match', 'round_robin', 'least_loaded', 'best_performance'].map((s) => Type.Literal(s)));

export const CONFIG_FIELDS: ConfigField[] = [
  { path: 'env', env: 'NODE_ENV', schema: Type.String(), default: 'development', description: '`production` refuses generated secrets.' },
  { path: 'server.host', env: 'MCP_HOST', schema: Type.String({ minLength: 1 }), default: '0.0.0.0', description: 'Interface to listen on.' },
  { path: 'server.port', env: 'MCP_PORT', schema: Port, default: 8080, description: 'REST API, docs, dashboard and metrics port (0 = ephemeral).' },
  { path: 'server.ws_port', env: 'MCP_WS_PORT', schema: Port, default: 8081, description: 'Dedicated Socket.IO port (also served on the API port). 0 = ephemeral; -1 not allowed.' },
  { path: 'server.public_url', env: 'MCP_PUBLIC_URL', schema: Type.String(), default: '', description: 'URL printed at start and used in links; derived from host/port when empty.' },
  { path: 'server.body_limit', env: 'MCP_BODY_LIMIT', schema: Type.Integer({ minimum: 1024, maximum: 10 * 1024 * 1024 }), default: 1024 * 1024, description: 'Maximum request body in bytes (up to 10 MB).' },
  { path: 'server.cors_origins', env: 'MCP_CORS_ORIGINS', schema: Type.Array(Type.String()), default: [], description: 'Comma-separated CORS allow-list; none by default.' },
  { path: 'server.tls_cert', env: 'MCP_TLS_CERT', schema: Type.String(), default: '', description: 'Path to a PEM certificate; with MCP_TLS_KEY enables HTTPS/WSS (TLS 1.3 only).' },
  { path: 'server.tls_key', env: 'MCP_TLS_KEY', schema: Type.String(), default: '', description: 'Path to the PEM private key for MCP_TLS_CERT.', secret: true },
  { path: 'server.trust_proxy', env: 'MCP_TRUST_PROXY', schema: Type.Boolean(), default: false, description: 'Trust X-Forwarded-For/-Proto/-Host from a reverse proxy (request IPs in audit entries and rate limits). Only behind a proxy that sets them.' },
  { path: 'server.json_max_depth', env: 'MCP_JSON_MAX_DEPTH', schema: Type.Integer({ minimum: 2, maximum: 256 }), default: 32, description: 'Maximum nesting depth of JSON request bodies; deeper → 400 VALIDATION_ERROR.' },
  { path: 'server.shutdown_grace_ms', env: 'MCP_SHUTDOWN_GRACE_MS', schema: Type.Integer({ minimum: 0, maximum: 120000 }), default: 10000, description: 'How long in-flight requests may run after SIGTERM.' },
  { path: 'store.database_url', env: 'DATABASE_URL', schema: Type.String(), default: '', description: 'postgres://… to use PostgreSQL; empty = embedded PGlite.', secret: true },
  { path: 'store.data_dir', env: 'MCP_DATA_DIR', schema: Type.String({ minLength: 1 }), default: './data', description: 'Directory for the embedded store and generated key files.' },
  { path: 'store.pool_size', env: 'MCP_DB_POOL_SIZE', schema: Type.Integer({ minimum: 1, maximum: 200 }), default: 20, description: 'PostgreSQL connection pool size.' },
  { path: 'store.prepared_statements', env: 'MCP_DB_PREPARED_STATEMENTS', schema: Type.Boolean(), default: true, description: 'PostgreSQL: run hot statements as named prepared statements (planned once per connection: plan_cache_mode=force_generic_plan, sent as a startup option). Set false behind a pooler in transaction mode (e.g. PgBouncer) that supports neither.' },
  { path: 'store.vacuum_interval_ms', env: 'MCP_DB_VACUUM_INTERVAL_MS', schema: Type.Integer({ minimum: 0, maximum: 3600000 }), default: 2000, description: 'Where autovacuum does not run (PGlite; PostgreSQL with autovacuum off), how often the leader checks the queue tables (tasks, audit_pending): it vacuums those with at least 5,000 dead rows, or rows inserted since their last vacuum, and 10 % of their live rows, and analyzes every table (PostgreSQL; PGlite: the queue tables) in which 50 rows + 10 % changed since its last ANALYZE (so that plans, prepared ones too, see its size). 0 = never.' },
  { path: 'coordination.redis_url', env: 'REDIS_URL', schema: Type.String(), default: '', description: 'redis://… for multi-process coordination; empty = in-process.', secret: true },
  { path: 'coordination.key_prefix', env: 'MCP_REDIS_PREFIX', schema: Type.String({ minLength: 1, maxLength: 64 }), default: 'mcp:', description: 'Prefix of every Redis key and channel (several deployments or test runs can share one Redis).' },
  { path: 'coordination.safety_net_ms', env: 'MCP_DISPATCH_SAFETY_NET_MS', schema: Type.Integer({ minimum: 0, maximum: 600000 }), default: 2000, description: 'Every process runs a dispatch round this often even without a wake-up (lost pub/sub message, Redis outage). 0 = off.' },
  { path: 'auth.issuer', env: 'MCP_JWT_ISSUER', schema: Type.String({ minLength: 1 }), default: 'mcp-server', description: 'JWT `iss`.' },
  { path: 'auth.audience', env: 'MCP_JWT_AUDIENCE', schema: Type.String({ minLength: 1 }), default: 'mcp-api', description: 'JWT `aud`.' },
  { path: 'auth.user_access_ttl', env: 'MCP_USER_ACCESS_TTL', schema: Seconds(30, 86400), default: 900, description: 'User access-token lifetime (s).' },
  { path: 'auth.user_refresh_ttl', env: 'MCP_USER_REFRESH_TTL', schema: Seconds(60, 2592000), default: 86400, description: 'User refresh-token lifetime (s).' },
  { path: 'auth.agent_access_ttl', env: 'MCP_AGENT_ACCESS_TTL', schema: Seconds(30, 86400), default: 7200, description: 'Agent access-token lifetime (s).' },
  { path: 'auth.agent_refresh_ttl', env: 'MCP_AGENT_REFRESH_TTL', schema: Seconds(60, 2592000), default: 86400, description: 'Agent refresh-token lifetime (s).' },
  { path: 'auth.password_pepper', env: 'MCP_PASSWORD_PEPPER', schema: Type.String(), default: '', description: 'Server-side password pepper (not stored in the database). Generated into the data dir when empty, refused in production.', secret: true },
  { path: 'auth.admin_password', env: 'MCP_ADMIN_PASSWORD', schema: Type.String(), default: '', description: 'Password for the first `admin` user; generated and printed once when empty.', secret: true },
  { path: 'auth.mfa_required_roles', env: 'MCP_MFA_REQUIRED_ROLES', schema: Type.Array(Role), default: ['admin'], description: 'Roles that must enrol TOTP MFA. A user of such a role without MFA works normally for MCP_MFA_GRACE_PERIOD from their first sign-in (the login response gives `mfa_setup_deadline`); after it, only MFA setup/verify, GET /auth/me and logout answer them (elsewhere 401 MFA_REQUIRED) until they enrol.' },
  { path: 'auth.mfa_grace_period', env: 'MCP_MFA_GRACE_PERIOD', schema: Seconds(0, 2592000), default: 259200, description: 'Seconds a user of a role in MCP_MFA_REQUIRED_ROLES may work without MFA, from their first login or refresh while it applies (a role change starts it afresh). 0 = enrol before anything else.' },
  { path: 'auth.signing_key', env: 'MCP_SIGNING_KEY', schema: Type.String(), default: '', description: 'PKCS#8 PEM Ed25519 private key for JWTs; stored in the database when empty, refused in production.', secret: true },
  { path: 'security.master_key', env: 'MCP_MASTER_KEY', schema: Type.String(), default: '', description: '32-byte base64/hex master key for field encryption; a 0600 key file in the data dir when empty, refused in production.', secret: true },
  { path: 'security.metrics_token', env: 'MCP_METRICS_TOKEN', schema: Type.String(), default: '', description: 'Bearer token required by /metrics when set.', secret: true },
  { path: 'security.webhook_url', env: 'MCP_SECURITY_WEBHOOK_URL', schema: Type.String(), default: '', description: 'POST target for security alerts (JSON: alert_id, rule, severity, message, created_at; never PHI). Empty = none.', secret: true },
  { path: 'security.fhe_max_ciphertexts', env: 'MCP_FHE_MAX_CIPHERTEXTS', schema: Type.Integer({ minimum: 1, maximum: 256 }), default: 32, description: 'Most ciphertexts one POST /fhe/aggregate takes (each about 440 KB in base64 and 10 ms of CPU; the route\'s body limit follows).' },
  { path: 'security.key_poll_ms', env: 'MCP_KEY_POLL_MS', schema: Type.Integer({ minimum: 100, maximum: 600000 }), default: 5000, description: 'How often each process re-reads the field-key version count (rotations are also announced over coordination) and the leader checks for re-encryption work.' },
  { path: 'retention.tasks_days', env: 'MCP_RETENTION_TASKS_DAYS', schema: Type.Integer({ minimum: 1, maximum: 36500 }), default: 90, description: 'Days finished tasks are kept.' },
  { path: 'retention.pipelines_days', env: 'MCP_RETENTION_PIPELINES_DAYS', schema: Type.Integer({ minimum: 1, maximum: 36500 }), default: 180, description: 'Days finished pipeline runs are kept.' },
  { path: 'retention.events_days', env: 'MCP_RETENTION_EVENTS_DAYS', schema: Type.Integer({ minimum: 1, maximum: 36500 }), default: 30, description: 'Days task events (history rows) are kept.' },
  { path: 'retention.metrics_days', env: 'MCP_RETENTION_METRICS_DAYS', schema: Type.Integer({ minimum: 1, maximum: 36500 }), default: 30, description: 'Days detailed metrics are kept. This server stores none: Prometheus scrapes /metrics and its own retention applies (set it to this).' },
  { path: 'retention.offline_agents_days', env: 'MCP_RETENTION_OFFLINE_AGENTS_DAYS', schema: Type.Integer({ minimum: 1, maximum: 36500 }), default: 90, description: 'Days an offline or deleted agent is kept.' },
  { path: 'retention.audit_days', env: 'MCP_RETENTION_AUDIT_DAYS', schema: Type.Integer({ minimum: 2555, maximum: 36500 }), default: 2555, description: 'Days audit entries are kept (at least 2555 = 7 years; the database refuses younger purges).' },
  { path: 'retention.interval_ms', env: 'MCP_RETENTION_INTERVAL_MS', schema: Type.Integer({ minimum: 1000, maximum: 86400000 }), default: 3600000, description: 'How often the leader runs the retention purge (which also removes expired refresh tokens, revocations and idempotency keys) and the audit-chain check.' },
  { path: 'agents.timeout_seconds', env: 'MCP_AGENT_TIMEOUT_SECONDS', schema: Seconds(5, 86400), default: 120, description: 'How long after its socket closes (a connected socket counts as a sign of life, heartbeats or not) a socket agent is offline.' },
  { path: 'agents.rest_timeout_seconds', env: 'MCP_AGENT_REST_TIMEOUT_SECONDS', schema: Seconds(5, 86400), default: 300, description: 'Heartbeat silence after which a REST-only agent is offline.' },
  { path: 'agents.heartbeat_interval_seconds', env: 'MCP_HEARTBEAT_INTERVAL_SECONDS', schema: Seconds(1, 3600), default: 30, description: '`next_heartbeat` suggested to agents.' },
  { path: 'agents.builtin', env: 'MCP_BUILTIN_AGENTS', schema: Type.Boolean(), default: true, description: 'Start the in-process built-in agents.' },
  { path: 'agents.builtin_id', env: 'MCP_BUILTIN_AGENT_ID', schema: Type.String({ pattern: '^([A-Za-z0-9_-]{1,64})?$' }), default: '', description: 'Agent id of this process\'s built-in agent; empty = `builtin-local` with in-process coordination, `builtin-<host>-<port>` with Redis (each process needs its own, stable across its restarts).' },
  { path: 'tasks.retry_base_ms', env: 'MCP_RETRY_BASE_MS', schema: Type.Integer({ minimum: 1, maximum: 3600000 }), default: 1000, description: 'Retry backoff base.' },
  { path: 'tasks.retry_cap_ms', env: 'MCP_RETRY_CAP_MS', schema: Type.Integer({ minimum: 1, maximum: 86400000 }), default: 60000, description: 'Retry backoff cap.' },
  { path: 'tasks.lease_grace_seconds', env: 'MCP_LEASE_GRACE_SECONDS', schema: Seconds(0, 3600), default: 30, description: 'How long a disconnected agent keeps its leases.' },
  { path: 'tasks.default_strategy', env: 'MCP_DEFAULT_STRATEGY', schema: Strategy, default: 'capability_match', description: 'Default assignment strategy.' },
  { path: 'tasks.sweep_interval_ms', env: 'MCP_SWEEP_INTERVAL_MS', schema: Type.Integer({ minimum: 10, maximum: 600000 }), default: 1000, description: 'How often leases, backoffs and offline agents are swept.' },
  { path: 'tasks.queue_position_exact_limit', env: 'MCP_QUEUE_POSITION_EXACT_LIMIT', schema: Type.Integer({ minimum: 1, maximum: 10000000 }), default: 10000, description: 'A create\'s queue_position is exact up to this many tasks ahead; past it, it is estimated from a count of the queue at most a second old (one count a second, however long the queue grows).' },
  { path: 'limits.default_per_min', env: 'MCP_RATE_LIMIT_DEFAULT', schema: Type.Integer({ minimum: 1 }), default: 120, description: 'Requests per minute per principal for routes without their own limit.' },
  { path: 'limits.register_per_min', env: 'MCP_RATE_LIMIT_REGISTER', schema: Type.Integer({ minimum: 1 }), default: 10, description: 'Agent registrations per minute.' },
  { path: 'limits.task_create_per_min', env: 'MCP_RATE_LIMIT_TASK_CREATE', schema: Type.Integer({ minimum: 1 }), default: 100, description: 'Tasks created per minute (a batch counts per task).' },
  { path: 'limits.delegate_per_min', env: 'MCP_RATE_LIMIT_DELEGATE', schema: Type.Integer({ minimum: 1 }), default: 200, description: 'Delegations per minute.' },
  { path: 'limits.health_per_min', env: 'MCP_RATE_LIMIT_HEALTH', schema: Type.Integer({ minimum: 1 }), default: 60, description: 'Health calls per minute.' },
  { path: 'limits.probe_per_min', env: 'MCP_RATE_LIMIT_PROBE', schema: Type.Integer({ minimum: 1 }), default: 1200, description: 'Calls of /api/v1/live and /api/v1/ready per minute per IP: generous, for the liveness and readiness probes of every pod a node or load balancer checks.' },
  { path: 'limits.system_multiplier', env: 'MCP_RATE_LIMIT_SYSTEM_MULTIPLIER', schema: Type.Integer({ minimum: 1 }), default: 100, description: 'Multiplier for `system` principals.' },
  { path: 'limits.login_failures_per_user_ip', env: 'MCP_LOGIN_MAX_FAILURES', schema: Type.Integer({ minimum: 1 }), default: 10, description: 'Consecutive failed logins per username+IP before a 15-minute lock.' },
  { path: 'limits.login_per_ip_daily', env: 'MCP_LOGIN_MAX_PER_IP_DAILY', schema: Type.Integer({ minimum: 1 }), default: 100, description: 'Failed logins per IP per day.' },
  { path: 'log.level', env: 'MCP_LOG_LEVEL', schema: LogLevel, default: 'info', description: 'Log level.' },
  { path: 'log.health_broadcast_ms', env: 'MCP_HEALTH_BROADCAST_MS', schema: Type.Integer({ minimum: 0, maximum: 3600000 }), default: 30000, description: 'How often the leader sends system:health_check (status of each dependency) to subscribers of the system topic. 0 = never.' },
  { path: 'log.pretty', env: 'MCP_LOG_PRETTY', schema: Type.Boolean(), default: false, description: 'Human-readable logs (defaults to on in a terminal).' },
  { path: 'integrations.flask_url', env: 'FLASK_API_URL', schema: Type.String(), default: 'http://localhost:8000', description: 'The Flask emotional-analysis service.' },
  { path: 'integrations.flask_api_key', env: 'FLASK_API_KEY', schema: Type.String(), default: '', description: 'X-API-Key for the Flask service.', secret: true },
  { path: 'integrations.flask_health_ms', env: 'FLASK_HEALTH_INTERVAL_MS', schema: Millis(0, 3600000), default: 30000, description: 'How often GET {FLASK_API_URL}/health is checked while `flask` is on some AI route; while the last check failed, requests fail over at once. 0 = once at start.' },
  { path: 'integrations.flask_cache_seconds', env: 'FLASK_CACHE_SECONDS', schema: Seconds(0, 86400), default: 300, description: 'How long Flask results are cached (sealed, keyed by a keyed hash of text + context; Redis when configured). 0 = no cache.' },
  { path: 'ai.routes', env: 'MCP_AI_ROUTES', schema: Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), AiRoute), default: {}, description: 'Per task type, the AI providers to try in order (JSON), e.g. {"bias_detection":["openai","local"]}; a provider that fails (timeout, error, open breaker, rate limit, invalid output) passes the request to the next. Unlisted types use MCP_AI_DEFAULT_ROUTE. A provider not configured (no API key) is skipped.' },
  { path: 'ai.default_route', env: 'MCP_AI_DEFAULT_ROUTE', schema: AiRoute, default: ['local'], description: 'The AI providers for task types MCP_AI_ROUTES does not list (comma list).' },
  { path: 'ai.openai_api_key', env: 'OPENAI_API_KEY', schema: Type.String(), default: '', description: 'API key of the `openai` provider (registered when set).', secret: true },
  { path: 'ai.openai_base_url', env: 'OPENAI_BASE_URL', schema: Type.String(), default: '', description: 'Another OpenAI-compatible endpoint (self-hosted or custom models); empty = api.openai.com.' },
  { path: 'ai.openai_model', env: 'OPENAI_MODEL', schema: Type.String({ minLength: 1 }), default: 'gpt-4o-mini', description: 'Model of the `openai` provider.' },
  { path: 'ai.google_api_key', env: 'GOOGLE_API_KEY', schema: Type.String(), default: '', description: 'Gemini API key of the `google` provider (registered when set).', secret: true },
  { path: 'ai.google_base_url', env: 'GOOGLE_GENAI_BASE_URL', schema: Type.String(), default: '', description: 'Another endpoint for the Google GenAI SDK (a proxy); empty = the SDK default.' },
  { path: 'ai.google_model', env: 'GOOGLE_MODEL', schema: Type.String({ minLength: 1 }), default: 'gemini-2.0-flash', description: 'Model of the `google` provider.' },
  { path: 'ai.timeout_ms', env: 'MCP_AI_TIMEOUT_MS', schema: Millis(100, 600000), default: 30000, description: 'Per-call timeout of a remote AI provider or the Flask service.' },
  { path: 'ai.bias_timeout_ms', env: 'MCP_AI_BIAS_TIMEOUT_MS', schema: Millis(100, 600000), default: 45000, description: 'Per-call timeout for bias_detection.' },
  { path: 'ai.retries', env: 'MCP_AI_RETRIES', schema: Type.Integer({ minimum: 0, maximum: 5 }), default: 2, description: 'Retries per provider call (exponential backoff) before falling back to the next provider.' },
  { path: 'ai.retry_base_ms', env: 'MCP_AI_RETRY_BASE_MS', schema: Millis(1, 60000), default: 500, description: 'First retry delay; doubles per retry (capped at 5 s).' },
  { path: 'ai.breaker_failures', env: 'MCP_AI_BREAKER_FAILURES', schema: Type.Integer({ minimum: 1, maximum: 100 }), default: 5, description: 'Consecutive failures that open a provider\'s circuit breaker.' },
  { path: 'ai.breaker_half_open_ms', env: 'MCP_AI_BREAKER_HALF_OPEN_MS', schema: Millis(100, 3600000), default: 60000, description: 'How long an open breaker waits before a trial call (half-open); it closes after 2 successes.' },
  { path: 'ai.openai_per_min', env: 'MCP_AI_OPENAI_PER_MIN', schema: Type.Integer({ minimum: 1 }), default: 100, description: 'Calls per minute to the `openai` provider (all processes together with Redis).' },
  { path: 'ai.google_per_min', env: 'MCP_AI_GOOGLE_PER_MIN', schema: Type.Integer({ minimum: 1 }), default: 60, description: 'Calls per minute to the `google` provider.' },
  { path: 'ai.flask_per_min', env: 'MCP_AI_FLASK_PER_MIN', schema: Type.Integer({ minimum: 1 }), default: 600, description: 'Calls per minute to the Flask service (cache hits included).' },
];
