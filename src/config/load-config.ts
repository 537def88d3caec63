/**
 * Loads and validates configuration once: defaults < file (MCP_CONFIG, JSON) < environment <
 * explicit overrides (CLI flags). Every problem is reported by its environment name; the caller
 * exits with code 2. The result is frozen.
 */
import { readFileSync } from 'node:fs';
import Value from 'typebox/value';
import { CONFIG_FIELDS, type ConfigField } from './config-schema.ts';

export type AiProviderName = 'local' | 'openai' | 'google' | 'flask';

export interface Config {
  env: string;
  server: { host: string; port: number; ws_port: number; public_url: string; body_limit: number; cors_origins: string[]; tls_cert: string; tls_key: string; trust_proxy: boolean; json_max_depth: number; shutdown_grace_ms: number };
  store: { database_url: string; data_dir: string; pool_size: number; prepared_statements: boolean; vacuum_interval_ms: number };
  coordination: { redis_url: string; key_prefix: string; safety_net_ms: number };
  auth: { issuer: string; audience: string; user_access_ttl: number; user_refresh_ttl: number; agent_access_ttl: number; agent_refresh_ttl: number; password_pepper: string; admin_password: string; mfa_required_roles: Array<'worker' | 'supervisor' | 'admin' | 'system'>; mfa_grace_period: number; signing_key: string };
  security: { master_key: string; metrics_token: string; webhook_url: string; fhe_max_ciphertexts: number; key_poll_ms: number };
  retention: { tasks_days: number; pipelines_days: number; events_days: number; metrics_days: number; offline_agents_days: number; audit_days: number; interval_ms: number };
  agents: { timeout_seconds: number; rest_timeout_seconds: number; heartbeat_interval_seconds: number; builtin: boolean; builtin_id: string };
  tasks: { retry_base_ms: number; retry_cap_ms: number; lease_grace_seconds: number; default_strategy: 'capability_match' | 'round_robin' | 'least_loaded' | 'best_performance'; sweep_interval_ms: number; queue_position_exact_limit: number };
  limits: { default_per_min: number; register_per_min: number; task_create_per_min: number; delegate_per_min: number; health_per_min: number; probe_per_min: number; system_multiplier: number; login_failures_per_user_ip: number; login_per_ip_daily: number };
  log: { level: string; pretty: boolean; health_broadcast_ms: number };
  integrations: { flask_url: string; flask_api_key: string; flask_health_ms: number; flask_cache_seconds: number };
  ai: {
    routes: Record<string, AiProviderName[]>; default_route: AiProviderName[];
    openai_api_key: string; openai_base_url: string; openai_model: string; google_api_key: string; google_base_url: string; google_model: string;
    timeout_ms: number; bias_timeout_ms: number; retries: number; retry_base_ms: number; breaker_failures: number; breaker_half_open_ms: number;
    openai_per_min: number; google_per_min: number; flask_per_min: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  env?: Record<string, string | undefined>;
  /** Overrides by config path, e.g. {'server.port': 0}; highest precedence. */
  overrides?: Record<string, unknown>;
  /** Turn on pretty logs when stdout is a terminal and MCP_LOG_PRETTY is unset (the CLI/server entry). */
  prettyInTerminal?: boolean;
}

function getPath(obj: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys[keys.length - 1]!] = value;
}

/** Environment strings → the field's type: integers, booleans, comma lists, JSON objects. */
function fromEnv(field: ConfigField, raw: string): unknown {
  const type = (field.schema as { type?: string }).type;
  if (type === 'integer' || type === 'number') return raw.trim() === '' ? raw : Number(raw);
  if (type === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    return raw;
  }
  if (type === 'array') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (type === 'object') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return raw; // reported by the schema check as "expected an object"
    }
  }
  return raw;
}

function describeExpected(schema: ConfigField['schema']): string {
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.anyOf)) return `one of ${(s.anyOf as Array<{ const?: unknown }>).map((x) => String(x.const)).join(', ')}`;
  if (s.type === 'integer') return `an integer${typeof s.minimum === 'number' ? ` ≥ ${s.minimum}` : ''}${typeof s.maximum === 'number' ? ` ≤ ${s.maximum}` : ''}`;
  if (s.type === 'boolean') return 'true or false';
  if (s.type === 'array') return 'a comma-separated list';
  if (s.type === 'object') return 'a JSON object';
  return 'a string';
}

/** The first-start admin's password obeys the password policy (auth's MIN_PASSWORD_LENGTH; load-config.test.ts checks they agree). */
export const ADMIN_PASSWORD_MIN_LENGTH = 12;

/**
 * Keys of the MCP_CONFIG file that name no setting (a typo such as `agents.bultin` would
 * otherwise be ignored in silence). A setting whose value is an object is not looked into.
 */
function unknownFileKeys(file: Record<string, unknown>): string[] {
  const settings = new Set(CONFIG_FIELDS.map((f) => f.path));
  const sections = new Set(CONFIG_FIELDS.flatMap((f) => f.path.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));
  const out: string[] = [];
  const walk = (o: Record<string, unknown>, at: string) => {
    for (const [k, v] of Object.entries(o)) {
      const path = at ? `${at}.${k}` : k;
      if (settings.has(path)) continue;
      if (sections.has(path) && v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, path);
      else out.push(path);
    }
  };
  walk(file, '');
  return out;
}

export function loadConfig(opts: LoadConfigOptions = {}): Readonly<Config> {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  let file: Record<string, unknown> = {};
  if (env.MCP_CONFIG) {
    try {
      file = JSON.parse(readFileSync(env.MCP_CONFIG, 'utf8')) as Record<string, unknown>;
      for (const key of unknownFileKeys(file)) problems.push(`MCP_CONFIG: "${key}" is not a setting (see docs/config.md)`);
    } catch (err) {
      problems.push(`MCP_CONFIG: could not read a JSON config file at that path (${(err as Error).message})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const field of CONFIG_FIELDS) {
    let value = field.default;
    const fileValue = getPath(file, field.path);
    if (fileValue !== undefined) value = fileValue;
    const raw = env[field.env];
    const fromEnvironment = raw !== undefined && raw !== '' && !(opts.overrides && field.path in opts.overrides);
    if (raw !== undefined && raw !== '') value = fromEnv(field, raw);
    if (opts.overrides && field.path in opts.overrides) value = opts.overrides[field.path];
    if (!Value.Check(field.schema, value)) {
      // What was given as written (an environment string as typed: `abc`, not the NaN it became).
      const shown = field.secret ? '(hidden)' : fromEnvironment ? JSON.stringify(raw) : JSON.stringify(value);
      problems.push(`${field.env} (${field.path}): expected ${describeExpected(field.schema)}, got ${shown}`);
    }
    setPath(out, field.path, value);
  }
  const cfg = out as unknown as Config;
  if (opts.prettyInTerminal && env.MCP_LOG_PRETTY === undefined && !(opts.overrides && 'log.pretty' in opts.overrides)) cfg.log.pretty = !!process.stdout.isTTY;
  if (!!cfg.server.tls_cert !== !!cfg.server.tls_key) problems.push('MCP_TLS_CERT and MCP_TLS_KEY: set both or neither');
  if (cfg.auth.admin_password && cfg.auth.admin_password.length < ADMIN_PASSWORD_MIN_LENGTH) problems.push(`MCP_ADMIN_PASSWORD (auth.admin_password): expected at least ${ADMIN_PASSWORD_MIN_LENGTH} characters (the password policy), got (hidden)`);
  if (cfg.tasks.retry_cap_ms < cfg.tasks.retry_base_ms) problems.push('MCP_RETRY_CAP_MS: expected a value ≥ MCP_RETRY_BASE_MS');
  if (cfg.env === 'production') {
    for (const [key, v] of [['MCP_MASTER_KEY', cfg.security.master_key], ['MCP_PASSWORD_PEPPER', cfg.auth.password_pepper], ['MCP_SIGNING_KEY', cfg.auth.signing_key]] as const) {
      if (!v) problems.push(`${key}: required when NODE_ENV=production (generated secrets are refused)`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(cfg);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** The resolved config as printable rows, secrets redacted (`mcp config print`). */
export function describeConfig(cfg: Config): Array<{ env: string; path: string; value: unknown; description: string }> {
  return CONFIG_FIELDS.map((f) => {
    const v = getPath(cfg as unknown as Record<string, unknown>, f.path);
    return { env: f.env, path: f.path, value: f.secret && v ? '[REDACTED]' : v, description: f.description };
  });
}
