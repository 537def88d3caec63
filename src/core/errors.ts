/**
 * One error type for the whole server. Code determines the HTTP status (core/error-codes.ts);
 * `expose` false means the message is replaced by the registry's generic one when answered.
 * Messages never carry tokens, SQL or PHI.
 */
import { ERROR_CODES, type ErrorCode } from './error-codes.ts';

export interface FieldError {
  field: string;
  message: string;
}

export interface AppErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
  retryable?: boolean;
  expose?: boolean;
  /** Seconds a client should wait (429/503). */
  retryAfter?: number;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  readonly retryable: boolean;
  readonly expose: boolean;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message?: string, options: AppErrorOptions = {}) {
    super(message ?? ERROR_CODES[code].message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = options.details;
    this.retryable = options.retryable ?? this.status >= 500;
    this.expose = options.expose ?? this.status < 500;
    this.retryAfter = options.retryAfter;
  }

  /** The `{code, message, details?}` body shared by HTTP responses and Socket.IO acks. */
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    const message = this.expose ? this.message : ERROR_CODES[this.code].message;
    return this.details ? { code: this.code, message, details: this.details } : { code: this.code, message };
  }
}

export class ValidationError extends AppError {
  constructor(message: string, fieldErrors: FieldError[], code: ErrorCode = 'VALIDATION_ERROR') {
    super(code, message, { details: { field_errors: fieldErrors } });
  }
}

export class NotFoundError extends AppError {
  constructor(code: 'AGENT_NOT_FOUND' | 'TASK_NOT_FOUND' | 'PIPELINE_NOT_FOUND' | 'NOT_FOUND' = 'NOT_FOUND', message?: string) {
    super(code, message);
  }
}

export class ConflictError extends AppError {}
export class ForbiddenError extends AppError {
  constructor(code: 'INSUFFICIENT_PERMISSIONS' | 'UNAUTHORIZED_HEARTBEAT' | 'NOT_ASSIGNED_AGENT' = 'INSUFFICIENT_PERMISSIONS', message?: string, details?: Record<string, unknown>) {
    super(code, message, { details });
  }
}
export class UnauthenticatedError extends AppError {}

export class RateLimitedError extends AppError {
  constructor(retryAfter: number) {
    super('RATE_LIMIT_EXCEEDED', undefined, { retryAfter, details: { retry_after: retryAfter } });
  }
}

export class UnavailableError extends AppError {
  constructor(message?: string, retryAfter = 5, cause?: unknown) {
    super('SERVICE_UNAVAILABLE', message, { retryAfter, cause, expose: true });
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/**
 * Any failure as an AppError. A database "data exception" (SQLSTATE class 22: a number out of
 * range, a NUL character in text, a date the store cannot hold) is a value the client sent that
 * the schema let through: a 400 naming no field (the SQL and value are not echoed), not a 500.
 * Everything else unknown is INTERNAL_ERROR, its message withheld.
 */
export function asAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (isDataException(err)) {
    return new ValidationError('A value is outside what the server can store (out of range, or a NUL character in text).', [{ field: '(request)', message: 'holds a value out of range' }]);
  }
  return new AppError('INTERNAL_ERROR', undefined, { cause: err, expose: false });
}

/** SQLSTATE class 22, "data exception": the statement failed on a value it was given. */
export function isDataException(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code);
}
