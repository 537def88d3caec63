/**
 * Request validation with two Ajv instances: bodies are strict (no type coercion, unknown
 * fields rejected by `additionalProperties: false`, nothing silently removed); query strings
 * and path params coerce strings to the schema's scalar types.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from '../core/index.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function make(coerce: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, removeAdditional: false, useDefaults: true, coerceTypes: coerce ? 'array' : false, strict: false });
  addFormats(ajv);
  // RFC 3339 allows year 0000; the store (PostgreSQL) has no year 0, so such a timestamp is
  // refused here as invalid rather than by the database.
  const dateTime = ajv.formats['date-time'] as { validate: (s: string) => boolean; compare: (a: string, b: string) => number | undefined };
  ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !s.startsWith('0000') && dateTime.validate(s), compare: dateTime.compare });
  return ajv;
}

const bodyAjv = make(false);
const queryAjv = make(true);
const cache = new WeakMap<object, ValidateFunction>();

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : queryAjv;
  let fn = cache.get(schema as object);
  if (!fn || httpPart !== 'body') fn = ajv.compile(schema as object);
  if (httpPart === 'body') cache.set(schema as object, fn);
  return fn as ReturnType<FastifySchemaCompiler<unknown>>;
};

/** Ajv errors → `[{field, message}]` with dotted field paths (`tasks[3].priority`). */
export function toFieldErrors(errors: ErrorObject[] | Array<{ instancePath?: string; message?: string; params?: Record<string, unknown>; keyword?: string }>, prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    let field = (e.instancePath ?? '').replace(/^\//, '').replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
    field = field.replace(/^(\d+)/, '[$1]');
    let message = e.message ?? 'is invalid';
    const params = e.params ?? {};
    if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      field = field ? `${field}.${params.additionalProperty}` : params.additionalProperty;
      message = 'is not allowed (unknown field)';
    } else if (e.keyword === 'required' && typeof params.missingProperty === 'string') {
      field = field ? `${field}.${params.missingProperty}` : params.missingProperty;
      message = 'is required';
    }
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
    const full = prefix && field ? `${prefix}.${field}` : prefix || field || '(root)';
    const key = `${full}|${message}`;
    if (!seen.has(key)) { seen.add(key); out.push({ field: full, message }); }
  }
  return out.length ? out : [{ field: prefix || '(root)', message: 'is invalid' }];
}
