/**
 * The one registry of error codes (SPEC §2). Every error the server answers with has its code
 * here with its HTTP status; docs/errors.md documents them. Add a code here before using it.
 */
export const ERROR_CODES = {
  VALIDATION_ERROR: { status: 400, message: 'The request is invalid.' },
  INVALID_PARAMETERS: { status: 400, message: 'The parameters are invalid.' },
  EMPTY_UPDATE: { status: 400, message: 'The update names no field to change.' },
  INVALID_CAPABILITIES: { status: 400, message: 'The capabilities are invalid.' },
  MISSING_AUTHENTICATION: { status: 401, message: 'Authentication is required.' },
  INVALID_TOKEN: { status: 401, message: 'The token is invalid.' },
  TOKEN_EXPIRED: { status: 401, message: 'The token has expired.' },
  TOKEN_REUSED: { status: 401, message: 'The refresh token was already used; its family is revoked.' },
  INVALID_CREDENTIALS: { status: 401, message: 'Invalid credentials.' },
  MFA_REQUIRED: { status: 401, message: 'A valid MFA code is required.' },
  INSUFFICIENT_PERMISSIONS: { status: 403, message: 'The caller lacks the permission for this action.' },
  UNAUTHORIZED_HEARTBEAT: { status: 403, message: 'An agent may only heartbeat for itself.' },
  NOT_ASSIGNED_AGENT: { status: 403, message: 'The task is not assigned to this agent.' },
  AGENT_NOT_FOUND: { status: 404, message: 'Agent not found.' },
  TASK_NOT_FOUND: { status: 404, message: 'Task not found.' },
  PIPELINE_NOT_FOUND: { status: 404, message: 'Pipeline not found.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  AGENT_ALREADY_REGISTERED: { status: 409, message: 'An agent with this id is already registered.' },
  TASK_ALREADY_ASSIGNED: { status: 409, message: 'The task is already assigned.' },
  INVALID_STATUS_TRANSITION: { status: 409, message: 'The status transition is not allowed.' },
  STALE_ATTEMPT: { status: 409, message: 'The attempt is not the current one.' },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, message: 'A request with this Idempotency-Key is in progress.' },
  CONFLICT: { status: 409, message: 'The request conflicts with the current state.' },
  REQUEST_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'The Idempotency-Key was used with a different body.' },
  RATE_LIMIT_EXCEEDED: { status: 429, message: 'Rate limit exceeded.' },
  INTERNAL_ERROR: { status: 500, message: 'An internal error occurred.' },
  EXTERNAL_SERVICE_ERROR: { status: 502, message: 'An external service failed.' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'The service is unavailable.' },
  CIRCUIT_BREAKER_OPEN: { status: 503, message: 'The circuit breaker is open.' },
  UNSUPPORTED_EVENT: { status: 400, message: 'The event is not supported.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;
