/**
 * Structured JSON logs (pino). Secrets and PHI-bearing fields are redacted by path so that a
 * careless `log.info({body})` cannot leak them. Pretty output when a person runs it in a TTY.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password', '*.password', 'new_password', '*.new_password',
  'token', '*.token', 'access_token', '*.access_token', 'refresh_token', '*.refresh_token',
  'api_key', '*.api_key', 'authorization', '*.authorization', 'req.headers.authorization',
  'headers.authorization', 'headers["x-api-key"]', 'secret', '*.secret', 'totp_code', '*.totp_code',
  'parameters', '*.parameters', 'result', '*.result', 'input_data', '*.input_data', 'output', '*.output',
  'text', '*.text', 'content', '*.content', 'patient_id', '*.patient_id', 'session_id', '*.session_id',
  'enrollment_token', '*.enrollment_token', 'recovery_codes', '*.recovery_codes',
];

export interface LoggerOptions {
  level: string;
  pretty?: boolean;
  /** Where to write; defaults to stdout. Tests pass a stream to capture output. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    level: opts.level,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    base: { service: 'mcp-server' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (opts.destination) return pino(base, opts.destination as pino.DestinationStream);
  if (opts.pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(base);
}
