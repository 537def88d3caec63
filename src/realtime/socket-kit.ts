/** Small helpers shared by the socket handlers: validated, acked event handlers. */
import type { Socket } from 'socket.io';
import type { TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { ValidationError, asAppError } from '../core/index.ts';

export type Ack = (response: Record<string, unknown>) => void;

/** Compiled once per schema: every event of the hot path (results, acks) is checked with it. */
const compiled = new WeakMap<TSchema, Validator>();

function validatorOf(schema: TSchema): Validator {
  let v = compiled.get(schema);
  if (!v) compiled.set(schema, (v = Compile(schema)));
  return v;
}

/** Per schema: whether it accepts `{}` (an object whose fields are all optional). */
const takesEmpty = new WeakMap<TSchema, boolean>();

/**
 * The payload an event carries. A missing one (`emit(event)` or `emit(event, ack)`) means `{}`
 * for a schema whose fields are all optional (SPEC §8: `agent:heartbeat` has only optional
 * fields, so an empty heartbeat is valid); for any other schema it stays missing and is refused.
 */
export function payloadOf(schema: TSchema, payload: unknown): unknown {
  if (payload !== undefined) return payload;
  let empty = takesEmpty.get(schema);
  if (empty === undefined) takesEmpty.set(schema, (empty = validatorOf(schema).Check({})));
  return empty ? {} : payload;
}

export function validate<T>(schema: TSchema, payload: unknown): T {
  const v = validatorOf(schema);
  if (v.Check(payload)) return payload as T;
  const errors = v.Errors(payload).slice(0, 20).map((e) => {
    const path = (e as { instancePath?: string; path?: string }).instancePath ?? (e as { path?: string }).path ?? '';
    return { field: path.replace(/^\//, '').replace(/\//g, '.') || '(root)', message: e.message };
  });
  throw new ValidationError('The event payload is invalid.', errors.length ? errors : [{ field: '(root)', message: 'is invalid' }]);
}

/** Codes that make a refusal an authentication or authorization failure (audited, counted for breach detection). */
export const DENIAL_CODES: ReadonlySet<string> = new Set(['INSUFFICIENT_PERMISSIONS', 'INVALID_TOKEN', 'TOKEN_EXPIRED', 'MISSING_AUTHENTICATION']);

export interface HandlerHooks {
  /** A failure that is not an AppError: a bug, logged. */
  unexpected(err: unknown): void;
  /** A refusal with one of `DENIAL_CODES`. */
  denied(code: string, event: string): void;
}

/**
 * Handles `event` on `socket`: finds the ack callback (last argument), validates, runs, answers
 * `{ok: true, ...result}` or `{ok: false, error}`. Without an ack, failures go out as `error`.
 */
export function onEvent<T>(
  socket: Socket,
  event: string,
  schema: TSchema,
  fn: (payload: T) => Promise<Record<string, unknown> | void>,
  hooks: HandlerHooks,
): void {
  socket.on(event, (...args: unknown[]) => {
    const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as Ack) : undefined;
    const payload = payloadOf(schema, args[0]);
    void (async () => {
      try {
        const out = await fn(validate<T>(schema, payload));
        ack?.({ ok: true, ...(out ?? {}) });
      } catch (thrown) {
        const err = asAppError(thrown);
        if (err.code === 'INTERNAL_ERROR') hooks.unexpected(thrown);
        else if (DENIAL_CODES.has(err.code)) hooks.denied(err.code, event);
        const body = err.toJSON();
        if (ack) ack({ ok: false, error: body });
        else socket.emit('error', { ...body, timestamp: new Date().toISOString() });
      }
    })();
  });
}
