/** Shared schema pieces: ids, pagination, the error envelope. */
import Type, { type TSchema } from 'typebox';
import { ID_PATTERN } from '../core/index.ts';

export const Id = Type.String({ pattern: ID_PATTERN, description: 'An id: [A-Za-z0-9_-]{1,64}' });
export const Uuid = Type.String({ format: 'uuid' });
export const Timestamp = Type.String({ format: 'date-time' });
export const JsonObject = Type.Record(Type.String(), Type.Unknown());

export const Pagination = Type.Object({
  total: Type.Integer(),
  limit: Type.Integer(),
  offset: Type.Integer(),
  has_more: Type.Boolean(),
  next_offset: Type.Union([Type.Integer(), Type.Null()]),
});

/** The largest integer the store's `integer` columns hold: bounds offsets and attempts (a larger one is a 400, not a database error). */
export const MAX_INT32 = 2_147_483_647;

export const ListQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INT32, default: 0 })),
};

export const ErrorEnvelope = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String(),
    details: Type.Optional(JsonObject),
    request_id: Type.String(),
  }),
});

/**
 * The body of a POST that takes no input (SPEC §2: unknown body fields are rejected, 400). No body
 * at all is accepted too: create-app turns a missing POST body into `{}` before validation.
 */
export const EmptyBody = Type.Object({}, { additionalProperties: false });

export const IdParams = <K extends string>(name: K) => Type.Object({ [name]: Id } as { [P in K]: typeof Id }, { additionalProperties: false });

export function paginate(total: number, limit: number, offset: number): { total: number; limit: number; offset: number; has_more: boolean; next_offset: number | null } {
  const has_more = offset + limit < total;
  return { total, limit, offset, has_more, next_offset: has_more ? offset + limit : null };
}

export function Nullable<T extends TSchema>(t: T) {
  return Type.Union([t, Type.Null()]);
}
