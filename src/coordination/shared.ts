/** Helpers both adapters use so that they encode, validate and fail the same way. */
import { UnavailableError } from '../core/index.ts';

/** JSON text of a message/value; `undefined` becomes `null` so every value round-trips. */
export function encode(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

export function decode(text: string): unknown {
  return JSON.parse(text) as unknown;
}

/** TTLs and windows are whole positive milliseconds; anything else is a programming error. */
export function toTtl(ms: number, what = 'ttlMs'): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`${what} must be a positive number of milliseconds`);
  return Math.max(1, Math.ceil(ms));
}

export function toInteger(n: number, what: string): number {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} must be a safe integer`);
  return n;
}

export function closedError(kind: string): UnavailableError {
  return new UnavailableError(`Coordination (${kind}) is closed`);
}

/** Next fencing token: strictly above the last one and never below the clock, so restarts and flushes cannot reissue a token. */
export function nextFencingToken(previous: number, nowMs: number): number {
  return Math.max(previous + 1, Math.floor(nowMs));
}
