/**
 * The one error a stage handler throws on purpose. `code` is an error-registry style code
 * (VALIDATION_ERROR, QUALITY_GATE_FAILED, STAGE_INPUT_MISSING …); `retryable` tells the task
 * service whether another attempt could succeed (bad input and failed gates never will).
 * Messages name records and lines, never their content.
 */
export class StageFailure extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly details?: unknown;

  constructor(code: string, message: string, options: { retryable?: boolean; details?: unknown; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'StageFailure';
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.details !== undefined) this.details = options.details;
  }

  toJSON(): { code: string; message: string; retryable: boolean; details?: unknown } {
    return this.details === undefined
      ? { code: this.code, message: this.message, retryable: this.retryable }
      : { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

export function validationFailure(message: string, details?: unknown): StageFailure {
  return new StageFailure('VALIDATION_ERROR', message, { retryable: false, details });
}
