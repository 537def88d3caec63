/**
 * Pure hash-chain helpers for the append-only audit log (SPEC §9). No I/O: the audit
 * repository stores `prev_hash` and `hash` with each row and calls `verifyChain` over rows read
 * in chain order.
 *
 * hash = hex(SHA-256(prev_hash + canonicalJson(body))), or HMAC-SHA256 with the ring's
 * `auditChainKey` when a key is given (then someone who can write the table but does not hold
 * the key cannot forge a consistent chain). Only the body fields listed in `AUDIT_BODY_KEYS`
 * are hashed, so extra columns on a row (its own hash, a sequence number) are ignored.
 *
 * Storage note: the body must read back exactly as it was hashed — keep `timestamp` as the same
 * ISO-8601 string (a `Date` is canonicalised with `toISOString()`, i.e. millisecond precision).
 */
import { createHash, createHmac, type KeyObject } from 'node:crypto';
import type { DataClassification } from './classification.ts';

/** `prev_hash` of the first entry of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

export type AuditActorType = 'user' | 'agent' | 'system' | 'anonymous';

export interface AuditActor {
  type: AuditActorType;
  /** user_id / agent_id; null for anonymous callers. */
  id: string | null;
  role: string | null;
  ip: string | null;
  user_agent: string | null;
}

/** The common actions; others may be recorded (the type stays open). */
export const AUDIT_ACTIONS = [
  'create',
  'read',
  'update',
  'delete',
  'execute',
  'export',
  'login',
  'login_failed',
  'logout',
  'token_refresh',
  'token_reused',
  'mfa_setup',
  'mfa_verify',
  'access_denied',
  'purge',
  'key_rotate',
] as const;
export type KnownAuditAction = (typeof AUDIT_ACTIONS)[number];
export type AuditAction = KnownAuditAction | (string & Record<never, never>);

export type AuditOutcome = 'success' | 'failure' | 'denied';
export type AuditRiskLevel = 'low' | 'medium' | 'high' | 'critical';

/** One audit entry as hashed (SPEC §9). */
export interface AuditEntryBody {
  audit_id: string;
  /** ISO-8601 timestamp. */
  timestamp: string;
  actor: AuditActor;
  action: AuditAction;
  resource_type: string;
  resource_id: string | null;
  /**
   * Every resource of an entry that covers many (a batch create, a delivery flush, a group of
   * results); absent on single-resource entries, whose hash is then the same as before the
   * field existed (canonical JSON omits absent keys).
   */
  resource_ids?: string[];
  /** Names of the fields read or written (never their values). */
  fields: string[];
  data_classification: DataClassification | null;
  outcome: AuditOutcome;
  request_id: string | null;
  risk_level: AuditRiskLevel;
}

export interface ChainedAuditEntry extends AuditEntryBody {
  prev_hash: string;
  hash: string;
}

/** The fields covered by the hash, in a fixed list so row metadata never leaks in. */
export const AUDIT_BODY_KEYS = [
  'audit_id',
  'timestamp',
  'actor',
  'action',
  'resource_type',
  'resource_id',
  'resource_ids',
  'fields',
  'data_classification',
  'outcome',
  'request_id',
  'risk_level',
] as const satisfies readonly (keyof AuditEntryBody)[];

/**
 * Deterministic JSON: object keys sorted (by UTF-16 code unit), no whitespace, otherwise the
 * same rules as `JSON.stringify` (`toJSON` honoured, `undefined`/functions/symbols omitted in
 * objects and `null` in arrays, non-finite numbers → `null`). Throws on bigints and cycles.
 */
export function canonicalJson(value: unknown): string {
  const out = write(value, new Set());
  if (out === undefined) throw new TypeError('canonicalJson: the value has no JSON representation.');
  return out;
}

function write(value: unknown, ancestors: Set<object>): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'bigint':
      throw new TypeError('canonicalJson: bigint is not supported.');
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (ancestors.has(obj)) throw new TypeError('canonicalJson: cyclic structure.');
  ancestors.add(obj);
  try {
    if (Array.isArray(obj)) {
      return `[${obj.map((item: unknown) => write(item, ancestors) ?? 'null').join(',')}]`;
    }
    const record = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const item = write(record[key], ancestors);
      if (item !== undefined) parts.push(`${JSON.stringify(key)}:${item}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    ancestors.delete(obj);
  }
}

function bodyOf(entry: AuditEntryBody): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const key of AUDIT_BODY_KEYS) body[key] = entry[key];
  return body;
}

/** The actor's keys, sorted as canonicalJson sorts them. */
const ACTOR_KEYS = ['id', 'ip', 'role', 'type', 'user_agent'] as const;
const ACTOR_KEY_SET: ReadonlySet<string> = new Set(ACTOR_KEYS);

const isText = (v: unknown): v is string | null | undefined => v === null || v === undefined || typeof v === 'string';
function isTexts(v: unknown): v is string[] {
  if (!Array.isArray(v)) return false;
  for (const x of v) if (typeof x !== 'string') return false;
  return true;
}

/** `"key":value` for a string or null; nothing for undefined (canonicalJson omits it). */
const textField = (key: string, v: string | null | undefined) => (v === undefined ? '' : `,"${key}":${v === null ? 'null' : JSON.stringify(v)}`);

/**
 * canonicalJson of an entry body shaped as `AuditEntryBody` declares it (strings, nulls, string
 * arrays, an actor with its five keys), written without walking it generically: every audited
 * request hashes one. Null for any other shape, which takes the generic path (same text).
 * Exported for the property test that holds it to canonicalJson.
 */
export function canonicalPlainBody(e: AuditEntryBody): string | null {
  const a = e.actor as unknown as Record<string, unknown> | null;
  if (!a || typeof a !== 'object' || Object.getPrototypeOf(a) !== Object.prototype) return null;
  for (const k of Object.keys(a)) if (!ACTOR_KEY_SET.has(k)) return null;
  for (const k of ACTOR_KEYS) if (!isText(a[k])) return null;
  if (!isText(e.action) || !isText(e.audit_id) || !isText(e.data_classification) || !isText(e.outcome) || !isText(e.request_id)
    || !isText(e.resource_id) || !isText(e.resource_type) || !isText(e.risk_level) || !isText(e.timestamp)) return null;
  if (!isTexts(e.fields) || !(e.resource_ids === undefined || isTexts(e.resource_ids))) return null;
  // Each field is written with a leading comma (none when absent); the first one's is dropped.
  let actor = '';
  for (const k of ACTOR_KEYS) actor += textField(k, a[k] as string | null | undefined);
  const body = textField('action', e.action)
    + `,"actor":{${actor.slice(1)}}`
    + textField('audit_id', e.audit_id)
    + textField('data_classification', e.data_classification)
    + `,"fields":${list(e.fields)}`
    + textField('outcome', e.outcome)
    + textField('request_id', e.request_id)
    + textField('resource_id', e.resource_id)
    + (e.resource_ids === undefined ? '' : `,"resource_ids":${list(e.resource_ids)}`)
    + textField('resource_type', e.resource_type)
    + textField('risk_level', e.risk_level)
    + textField('timestamp', e.timestamp);
  return `{${body.slice(1)}}`;
}

/** A string array as canonical JSON. */
function list(xs: readonly string[]): string {
  let out = '';
  for (let i = 0; i < xs.length; i++) out += (i ? ',' : '') + JSON.stringify(xs[i]);
  return `[${out}]`;
}

/** The text an entry's hash covers: the canonical JSON of its body fields. */
export function canonicalBody(entry: AuditEntryBody): string {
  return canonicalPlainBody(entry) ?? canonicalJson(bodyOf(entry));
}

/** The hash of a body (its `canonicalBody`) chained after `prevHash` (hex). Keyed (HMAC) when `key` is given. */
export function linkHash(prevHash: string, body: string, key?: KeyObject): string {
  const h = key ? createHmac('sha256', key) : createHash('sha256');
  return h.update(prevHash + body, 'utf8').digest('hex');
}

/** The hash of `entry` chained after `prevHash` (hex). Keyed (HMAC) when `key` is given. */
export function computeEntryHash(prevHash: string, entry: AuditEntryBody, key?: KeyObject): string {
  return linkHash(prevHash, canonicalBody(entry), key);
}

/** `entry` with its `prev_hash` and `hash` set, ready to append. */
export function chainEntry(prevHash: string, entry: AuditEntryBody, key?: KeyObject): ChainedAuditEntry {
  return { ...entry, prev_hash: prevHash, hash: computeEntryHash(prevHash, entry, key) };
}

export type ChainBreakReason = 'prev_hash_mismatch' | 'hash_mismatch' | 'invalid_entry';

export type ChainVerification =
  | {
      ok: true;
      /** Entries verified. */
      checked: number;
      /** Hash of the last entry (the anchor when there were none): pass as `anchorHash` to continue. */
      last_hash: string;
    }
  | {
      ok: false;
      /** Entries verified intact before the broken one (= its index). */
      checked: number;
      first_broken: { audit_id: string; index: number; reason: ChainBreakReason };
    };

export interface VerifyChainOptions {
  /** HMAC key the chain was written with; omit for a plain SHA-256 chain. */
  key?: KeyObject;
  /** Expected `prev_hash` of the first entry: `GENESIS_HASH` (default) or the last hash of the previous page. */
  anchorHash?: string;
}

/**
 * Verifies entries given in chain order. The first entry whose `prev_hash` is not the previous
 * entry's `hash` (a deletion, an insertion or a reorder) or whose own `hash` does not match its
 * content (an edit) is reported.
 */
export function verifyChain(
  entries: ReadonlyArray<AuditEntryBody & { hash: string; prev_hash: string }>,
  options: VerifyChainOptions = {},
): ChainVerification {
  let expectedPrev = options.anchorHash ?? GENESIS_HASH;
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index];
    const broken = (reason: ChainBreakReason): ChainVerification => ({
      ok: false,
      checked: index,
      first_broken: { audit_id: typeof entry?.audit_id === 'string' ? entry.audit_id : '', index, reason },
    });
    if (!entry || typeof entry !== 'object') return broken('invalid_entry');
    if (entry.prev_hash !== expectedPrev) return broken('prev_hash_mismatch');
    let actual: string;
    try {
      actual = computeEntryHash(entry.prev_hash, entry, options.key);
    } catch {
      return broken('invalid_entry');
    }
    if (actual !== entry.hash) return broken('hash_mismatch');
    expectedPrev = entry.hash;
  }
  return { ok: true, checked: entries.length, last_hash: expectedPrev };
}
