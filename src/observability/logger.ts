/**
 * Structured JSON logs (pino). Secrets and PHI never reach the output, in three layers:
 * 1. `redact` paths (fast, exact) for the well-known places: headers, bodies, tokens;
 * 2. a deep scrub of every logged object (any depth, arrays included) that replaces the value of
 *    any key that names a secret or PHI field (`SENSITIVE_KEY`), and masks credential-shaped
 *    strings (JWTs, `Bearer …`, agent API keys, URL passwords) wherever they appear;
 * 3. the same string masking applied to the message text itself.
 * Pretty output when a person runs it in a TTY.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_CENSOR = '[REDACTED]';

export const REDACT_PATHS = [
  'password', '*.password', 'new_password', '*.new_password', 'current_password', '*.current_password',
  'token', '*.token', 'access_token', '*.access_token', 'refresh_token', '*.refresh_token', 'id_token', '*.id_token',
  'api_key', '*.api_key', 'apiKey', '*.apiKey', 'authorization', '*.authorization', 'req.headers.authorization',
  'headers.authorization', 'headers["x-api-key"]', 'headers.cookie', 'req.headers.cookie', 'req.headers["x-api-key"]',
  'secret', '*.secret', 'client_secret', '*.client_secret', 'totp_code', '*.totp_code', 'totp_secret', '*.totp_secret',
  'master_key', '*.master_key', 'password_pepper', '*.password_pepper', 'signing_key', '*.signing_key', 'private_key', '*.private_key',
  'metrics_token', '*.metrics_token', 'flask_api_key', '*.flask_api_key', 'openai_api_key', '*.openai_api_key', 'google_api_key', '*.google_api_key',
  'parameters', '*.parameters', 'result', '*.result', 'input_data', '*.input_data', 'output', '*.output',
  'text', '*.text', 'content', '*.content', 'transcript', '*.transcript', 'body', '*.body',
  'patient_id', '*.patient_id', 'patient_name', '*.patient_name', 'session_id', '*.session_id', 'context', '*.context',
  'enrollment_token', '*.enrollment_token', 'recovery_codes', '*.recovery_codes', 'recovery_code', '*.recovery_code',
];

/**
 * Keys whose values are never logged, at any depth. Matched case-insensitively against the
 * whole key (with `-` treated as `_`). Ids that are not PHI (task_id, agent_id, request_id,
 * pipeline_id) are deliberately not here: they are what makes logs useful.
 */
export const SENSITIVE_KEY = new RegExp(
  '^(' + [
    'password', 'new_password', 'current_password', 'passwd', 'pass', 'pepper', 'password_pepper',
    'token', 'access_token', 'refresh_token', 'id_token', 'enrollment_token', 'metrics_token', 'bearer',
    'authorization', 'cookie', 'set_cookie', 'x_api_key', 'api_key', 'apikey', 'flask_api_key', 'openai_api_key', 'google_api_key',
    'secret', 'client_secret', 'totp_secret', 'totp_code', 'recovery_codes', 'recovery_code', 'otp',
    'master_key', 'signing_key', 'private_key', 'key_material', 'ciphertext',
    'parameters', 'result', 'input_data', 'output', 'text', 'content', 'transcript', 'body', 'payload',
    'context', 'notes', 'message_text', 'utterance', 'utterances', 'turns', 'conversation',
    'patient_id', 'patient_name', 'patient', 'session_id', 'ssn', 'dob', 'date_of_birth', 'mrn', 'diagnosis',
    'email', 'phone', 'address',
  ].join('|') + ')$',
  'i',
);

/** Any key ending in one of these names a credential (`session_token`, `db_password`, `x-api-key`…). */
const SENSITIVE_SUFFIX = /(^|_)(password|passwd|secret|token|api_?key|private_?key|pepper|cookie|credentials?)$/i;
/** Harmless keys the suffix rule would catch. */
const NOT_SENSITIVE = new Set(['fencing_token', 'token_type', 'token_family']);

export function isSensitiveKey(key: string): boolean {
  const k = key.replace(/-/g, '_');
  if (NOT_SENSITIVE.has(k.toLowerCase())) return false;
  return SENSITIVE_KEY.test(k) || SENSITIVE_SUFFIX.test(k);
}

/** Credential-shaped substrings, masked wherever they appear in logged strings. */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g, '[REDACTED_JWT]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [REDACTED]'],
  [/\bmcp_(ak|rt|et|mt)_[A-Za-z0-9_-]{8,}/g, '[REDACTED_KEY]'],
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]+@/gi, '$1[REDACTED]@'],
];

export function scrubString(s: string): string {
  let out = s;
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep);
  return out;
}

const MAX_DEPTH = 8;

/** Deep copy with sensitive keys censored and credential-shaped strings masked. */
export function scrub(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Truncated]';
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  const src = value instanceof Error ? { type: value.name, message: value.message, stack: value.stack, ...(value as unknown as Record<string, unknown>) } : (value as Record<string, unknown>);
  for (const [k, v] of Object.entries(src)) {
    out[k] = isSensitiveKey(k) && v !== undefined && v !== null ? REDACT_CENSOR : scrub(v, depth + 1, seen);
  }
  return out;
}

export interface LoggerOptions {
  level: string;
  pretty?: boolean;
  /** Where to write; defaults to stdout. Tests pass a stream to capture output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base: pino.LoggerOptions = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: REDACT_CENSOR },
    base: { service: 'mcp-server' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // SPEC §11 names the fields level, time, component, message (pino's default key is msg).
    messageKey: 'message',
    // `err` is serialised first (stack, message, own props) and then scrubbed with the rest.
    serializers: { err: pino.stdSerializers.err },
    formatters: {
      level: (label: string) => ({ level: label }),
      log: (obj: Record<string, unknown>) => scrub(obj) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        const scrubbed = args.map((a) => (typeof a === 'string' ? scrubString(a) : a)) as Parameters<typeof method>;
        method.apply(this, scrubbed);
      },
    },
  };
  if (opts.destination) return pino(base, opts.destination as pino.DestinationStream);
  if (opts.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', messageKey: 'message' } } });
  }
  return pino(base);
}
