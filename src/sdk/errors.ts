/** The SDK's error types: REST failures (`McpApiError`) and handler failures that must not be retried. */

/** A failed REST call: the server's SPEC §2 error envelope, or a network/timeout failure (`status` 0). */
export class McpApiError extends Error {
  override readonly name = 'McpApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> | undefined = undefined,
    readonly requestId: string | undefined = undefined,
  ) {
    super(message);
  }

  /** True for 401 answers (missing, invalid or expired credentials). */
  get isUnauthenticated(): boolean {
    return this.status === 401;
  }
}

/**
 * Thrown by a task handler when retrying cannot help (bad input, unsupported request): the task
 * is reported with `retryable: false` and goes to the dead-letter queue instead of being retried
 * (the model is BullMQ's `UnrecoverableError`). Any other thrown error is reported retryable,
 * unless it carries `retryable: false` itself.
 */
export class NonRetryableError extends Error {
  override readonly name = 'NonRetryableError';
  readonly retryable = false as const;
  constructor(message: string, readonly code = 'NON_RETRYABLE', readonly details?: Record<string, unknown>) {
    super(message);
  }
}

/** What a handler failure is reported as: `{code, message, retryable, details?}` (SPEC §6 `fail`). */
export function toTaskError(err: unknown): { code: string; message: string; retryable: boolean; details?: Record<string, unknown> } {
  const e = (err && typeof err === 'object' ? err : { message: String(err) }) as { code?: unknown; message?: unknown; retryable?: unknown; details?: unknown; name?: unknown };
  const code = typeof e.code === 'string' && /^[A-Za-z0-9_.:-]{1,100}$/.test(e.code) ? e.code : 'HANDLER_ERROR';
  const message = (typeof e.message === 'string' && e.message ? e.message : typeof e.name === 'string' ? e.name : 'The task handler failed.').slice(0, 2000);
  const retryable = !(err instanceof NonRetryableError) && e.retryable !== false;
  const details = e.details && typeof e.details === 'object' && !Array.isArray(e.details) ? (e.details as Record<string, unknown>) : undefined;
  return details ? { code, message, retryable, details } : { code, message, retryable };
}
