/**
 * AuditLog: the append-only, hash-chained audit log of SPEC §9, stored in `audit_log`
 * (migration 0003).
 *
 * - `append(q, entries)` writes IN THE CALLER'S TRANSACTION: it locks the chain's head row
 *   (`audit_head`, migration 0007; held until that transaction ends, so appends are serialised
 *   and `seq` order is chain order), chains the new entries after the head with the key ring's
 *   `auditChainKey` (HMAC), inserts them and moves the head. It throws when anything fails,
 *   so the caller's request fails with it — an access that cannot be audited does not happen.
 *   Given a `Db` rather than a transaction, it opens its own transaction.
 * - `list(filters, page)` for GET /api/v1/audit; `verify()` pages through the whole chain and
 *   reports the first broken link (edit, deletion, insertion, reorder).
 * - The database refuses UPDATE/DELETE/TRUNCATE of audit rows (triggers); only the retention
 *   purge (`purgeBefore`, through the `audit_log_purge` SQL function) removes rows older than
 *   2555 days, as a chain prefix, moving the verification anchor forward.
 *
 * Limitation: verification detects changes inside the chain; truncating its newest entries
 * leaves a shorter but valid chain (detect that by comparing with an exported head hash).
 */
import type { KeyObject } from 'node:crypto';
import { AppError, NotFoundError, newId, systemClock, type Clock } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import {
  GENESIS_HASH,
  chainEntry,
  verifyChain,
  type AuditAction,
  type AuditActor,
  type AuditEntryBody,
  type AuditOutcome,
  type AuditRiskLevel,
  type ChainBreakReason,
  type ChainedAuditEntry,
} from './audit-chain.ts';
import type { DataClassification } from './classification.ts';

const VERIFY_PAGE = 1000;

/** What a caller supplies; the log fills in id, timestamp and the chain. */
export interface AuditEntryInput {
  actor: AuditActor;
  action: AuditAction;
  resource_type: string;
  resource_id?: string | null;
  /** Many resources of `resource_type` in one entry (then `resource_id` is usually null). */
  resource_ids?: string[];
  /** Names of the fields read or written — never their values. */
  fields?: string[];
  data_classification?: DataClassification | null;
  outcome?: AuditOutcome;
  request_id?: string | null;
  /** Defaults from action and outcome (see `defaultRiskLevel`). */
  risk_level?: AuditRiskLevel;
}

/** Who is acting and under which request: what services pass around to `audit`. */
export interface AuditContext {
  actor: AuditActor;
  request_id?: string | null;
}

export interface StoredAuditEntry extends ChainedAuditEntry {
  seq: number;
}

export interface AuditFilters {
  /** actor id (user_id / agent_id). */
  actor?: string;
  actor_type?: string;
  action?: string;
  resource_type?: string;
  resource_id?: string;
  outcome?: string;
  /** Inclusive lower bound (ISO-8601). */
  from?: string;
  /** Exclusive upper bound (ISO-8601). */
  to?: string;
}

export interface AuditPage {
  limit: number;
  offset: number;
  order?: 'asc' | 'desc';
}

export type AuditVerification =
  | { ok: true; checked: number; anchor: { seq: number; hash: string } | null; last_hash: string }
  | {
      ok: false;
      checked: number;
      anchor: { seq: number; hash: string } | null;
      first_broken: { audit_id: string; seq: number | null; index: number; reason: ChainBreakReason };
    };

export interface AuditLogOptions {
  /** HMAC key of the chain (`KeyRing.auditChainKey`). */
  key: KeyObject;
  /** Time source of entry timestamps (tests move it). */
  clock?: Clock;
}

interface AuditRow {
  seq: number | string;
  audit_id: string;
  ts: string;
  actor: AuditActor;
  action: string;
  resource_type: string;
  resource_id: string | null;
  resource_ids: string[] | null;
  fields: string[];
  data_classification: string | null;
  outcome: string;
  request_id: string | null;
  risk_level: string;
  prev_hash: string;
  hash: string;
}

const COLUMNS = 'seq, audit_id::text AS audit_id, ts, actor, action, resource_type, resource_id, resource_ids, fields, data_classification, outcome, request_id, risk_level, prev_hash, hash';

/** The system itself as an actor (periodic jobs, detectors). */
export const SYSTEM_ACTOR: AuditActor = Object.freeze({ type: 'system', id: 'mcp-server', role: 'system', ip: null, user_agent: null });

/** An actor for an authenticated principal (user or agent). */
export function actorOf(p: { type: 'user' | 'agent'; id: string; role: string } | null, ip: string | null = null, userAgent: string | null = null): AuditActor {
  if (!p) return { type: 'anonymous', id: null, role: null, ip, user_agent: userAgent };
  return { type: p.type, id: p.id, role: p.role, ip, user_agent: userAgent ? userAgent.slice(0, 256) : null };
}

/** Risk when the caller does not say: denials and failures medium, PHI exports/deletes high. */
export function defaultRiskLevel(action: AuditAction, outcome: AuditOutcome, classification: DataClassification | null | undefined): AuditRiskLevel {
  if (action === 'token_reused') return 'critical';
  if (outcome === 'denied' || outcome === 'failure') return 'medium';
  if ((action === 'export' || action === 'delete' || action === 'purge') && (classification === 'phi' || classification === 'restricted')) return 'high';
  if (action === 'purge' || action === 'key_rotate' || action === 'mfa_setup' || action === 'mfa_verify') return 'medium';
  return 'low';
}

function isDb(q: Queryable): q is Db {
  return typeof (q as Partial<Db>).transaction === 'function';
}

function toEntry(r: AuditRow): StoredAuditEntry {
  return {
    seq: Number(r.seq),
    audit_id: r.audit_id,
    timestamp: r.ts,
    actor: r.actor,
    action: r.action,
    resource_type: r.resource_type,
    resource_id: r.resource_id,
    ...(r.resource_ids ? { resource_ids: r.resource_ids } : {}),
    fields: r.fields,
    data_classification: r.data_classification as DataClassification | null,
    outcome: r.outcome as AuditOutcome,
    request_id: r.request_id,
    risk_level: r.risk_level as AuditRiskLevel,
    prev_hash: r.prev_hash,
    hash: r.hash,
  };
}

const INSERT_COLUMNS = 'audit_id, ts, at, actor, action, resource_type, resource_id, resource_ids, fields, data_classification, outcome, request_id, risk_level, prev_hash, hash';
const INSERT_CASTS = ['::uuid', '', '::timestamptz', '::jsonb', '', '', '', '::text[]', '::jsonb', '', '', '', '', '', ''];

/** `VALUES (…), (…)` for chained entries, with its parameters. */
function insertStatement(chained: ChainedAuditEntry[]): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const tuples: string[] = [];
  for (const e of chained) {
    const b = params.length;
    tuples.push(`(${INSERT_CASTS.map((c, i) => `$${b + i + 1}${c}`).join(', ')})`);
    params.push(e.audit_id, e.timestamp, e.timestamp, JSON.stringify(e.actor), e.action, e.resource_type, e.resource_id, e.resource_ids ?? null, JSON.stringify(e.fields), e.data_classification, e.outcome, e.request_id, e.risk_level, e.prev_hash, e.hash);
  }
  return { sql: `VALUES ${tuples.join(', ')}`, params };
}

export class AuditLog {
  readonly #key: KeyObject;
  readonly clock: Clock;

  constructor(private readonly db: Db, opts: AuditLogOptions) {
    this.#key = opts.key;
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * The last hash this instance appended or is appending: a hint, right unless another process
   * appended since or the transaction that wrote it failed or rolled back (then the append below
   * finds out and redoes).
   */
  #lastHead: string | null = null;

  /**
   * Appends `entries` (in order) to the chain inside the transaction `q`. Throws on any failure
   * (the caller's transaction should then roll back). Returns the stored entries.
   *
   * The head lives in `audit_head` (migration 0007). With a hint, one statement moves the head
   * from the hinted hash to the new last hash and inserts the entries only if that worked (the
   * row lock waits for any other appender; a moved head updates nothing). Without a hint, or when
   * it was stale, the head row is locked and read, and the entries chained after it.
   */
  async append(q: Queryable, entries: AuditEntryInput[]): Promise<ChainedAuditEntry[]> {
    if (entries.length === 0) return [];
    if (isDb(q)) return q.transaction((tx) => this.append(tx, entries));
    try {
      const bodies = entries.map((input) => this.#body(input));
      if (this.#lastHead !== null) {
        const hint = this.#lastHead;
        const chained = this.#chain(hint, bodies);
        const { sql, params } = insertStatement(chained);
        // An append issued while this one runs chains after it (it will wait for this
        // transaction's head lock anyway); if this one fails, that one re-chains like any miss.
        this.#lastHead = chained[chained.length - 1]!.hash;
        const { rows } = await q.query<{ n: number }>(
          `WITH h AS (
             UPDATE audit_head SET hash = $${params.length + 2} WHERE id AND hash = $${params.length + 1} RETURNING 1
           ), ins AS (
             INSERT INTO audit_log (${INSERT_COLUMNS}) SELECT v.* FROM (${sql}) AS v(${INSERT_COLUMNS}) WHERE EXISTS (SELECT 1 FROM h)
             RETURNING 1
           )
           SELECT count(*)::int AS n FROM ins`,
          [...params, hint, chained[chained.length - 1]!.hash]);
        if (Number(rows[0]?.n) === chained.length) return this.#appended(chained);
      }
      const chained = this.#chain(await this.#lockHead(q), bodies);
      const { sql, params } = insertStatement(chained);
      this.#lastHead = chained[chained.length - 1]!.hash;
      await q.query(
        `WITH h AS (UPDATE audit_head SET hash = $${params.length + 1} WHERE id)
         INSERT INTO audit_log (${INSERT_COLUMNS}) ${sql}`,
        [...params, chained[chained.length - 1]!.hash]);
      return this.#appended(chained);
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw new AppError('INTERNAL_ERROR', 'The audit log could not be written.', { cause: err, expose: false });
    }
  }

  /** Locks the head row until the transaction ends and returns the head (recreating a lost row). */
  async #lockHead(q: Queryable): Promise<string> {
    const { rows } = await q.query<{ hash: string }>('SELECT hash FROM audit_head WHERE id FOR UPDATE');
    if (rows[0]) return rows[0].hash;
    await q.query('INSERT INTO audit_head (id, hash) VALUES (true, $1) ON CONFLICT (id) DO NOTHING', [await this.headHash(q)]);
    return this.#lockHead(q);
  }

  #appended(chained: ChainedAuditEntry[]): ChainedAuditEntry[] {
    this.#lastHead = chained[chained.length - 1]!.hash;
    return chained;
  }

  #body(input: AuditEntryInput): AuditEntryBody {
    const outcome = input.outcome ?? 'success';
    const classification = input.data_classification ?? null;
    return {
      audit_id: newId(),
      timestamp: new Date(this.clock.now()).toISOString(),
      actor: { type: input.actor.type, id: input.actor.id, role: input.actor.role, ip: input.actor.ip, user_agent: input.actor.user_agent },
      action: input.action,
      resource_type: input.resource_type,
      resource_id: input.resource_id ?? null,
      ...(input.resource_ids?.length ? { resource_ids: [...input.resource_ids] } : {}),
      fields: [...(input.fields ?? [])],
      data_classification: classification,
      outcome,
      request_id: input.request_id ?? null,
      risk_level: input.risk_level ?? defaultRiskLevel(input.action, outcome, classification),
    };
  }

  #chain(prev: string, bodies: AuditEntryBody[]): ChainedAuditEntry[] {
    return bodies.map((b) => {
      const e = chainEntry(prev, b, this.#key);
      prev = e.hash;
      return e;
    });
  }

  /** One entry for `ctx`: the convenient form for services. */
  async audit(q: Queryable, ctx: AuditContext, entry: Omit<AuditEntryInput, 'actor' | 'request_id'> & { request_id?: string | null }): Promise<ChainedAuditEntry> {
    const [stored] = await this.append(q, [{ ...entry, actor: ctx.actor, request_id: entry.request_id ?? ctx.request_id ?? null }]);
    return stored!;
  }

  private async headHash(q: Queryable): Promise<string> {
    const { rows } = await q.query<{ hash: string }>('SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1');
    if (rows[0]) return rows[0].hash;
    const anchor = await this.anchor(q);
    return anchor?.hash ?? GENESIS_HASH;
  }

  private async anchor(q: Queryable = this.db): Promise<{ seq: number; hash: string } | null> {
    const { rows } = await q.query<{ seq: number | string; hash: string }>('SELECT seq, hash FROM audit_anchor WHERE id');
    return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : null;
  }

  async list(filters: AuditFilters, page: AuditPage, q: Queryable = this.db): Promise<{ entries: StoredAuditEntry[]; total: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (filters.actor !== undefined) add(`actor ->> 'id' = ?`, filters.actor);
    if (filters.actor_type !== undefined) add(`actor ->> 'type' = ?`, filters.actor_type);
    if (filters.action !== undefined) add('action = ?', filters.action);
    if (filters.resource_type !== undefined) add('resource_type = ?', filters.resource_type);
    if (filters.resource_id !== undefined) {
      params.push(filters.resource_id);
      where.push(`(resource_id = $${params.length} OR resource_ids @> ARRAY[$${params.length}::text])`);
    }
    if (filters.outcome !== undefined) add('outcome = ?', filters.outcome);
    if (filters.from !== undefined) add('at >= ?::timestamptz', filters.from);
    if (filters.to !== undefined) add('at < ?::timestamptz', filters.to);
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const order = page.order === 'asc' ? 'ASC' : 'DESC';
    const total = await q.query<{ n: number | string }>(`SELECT count(*)::int AS n FROM audit_log ${w}`, params);
    const { rows } = await q.query<AuditRow>(
      `SELECT ${COLUMNS} FROM audit_log ${w} ORDER BY seq ${order} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, page.limit, page.offset],
    );
    return { entries: rows.map(toEntry), total: Number(total.rows[0]?.n ?? 0) };
  }

  async get(auditId: string): Promise<StoredAuditEntry> {
    const { rows } = await this.db.query<AuditRow>(`SELECT ${COLUMNS} FROM audit_log WHERE audit_id::text = $1`, [auditId]);
    if (!rows[0]) throw new NotFoundError('NOT_FOUND', 'Audit entry not found.');
    return toEntry(rows[0]);
  }

  /**
   * Verifies the whole chain from the purge anchor (or genesis), page by page in `seq` order.
   * Reports the first entry whose `prev_hash` does not follow its predecessor or whose hash
   * does not match its content.
   */
  async verify(pageSize = VERIFY_PAGE): Promise<AuditVerification> {
    const anchor = await this.anchor();
    let expected = anchor?.hash ?? GENESIS_HASH;
    let afterSeq = anchor?.seq ?? 0;
    let checked = 0;
    for (;;) {
      const { rows } = await this.db.query<AuditRow>(`SELECT ${COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, [afterSeq, pageSize]);
      if (rows.length === 0) return { ok: true, checked, anchor, last_hash: expected };
      const entries = rows.map(toEntry);
      const result = verifyChain(entries, { key: this.#key, anchorHash: expected });
      if (!result.ok) {
        const broken = entries[result.first_broken.index];
        return {
          ok: false,
          checked: checked + result.checked,
          anchor,
          first_broken: { audit_id: result.first_broken.audit_id, seq: broken?.seq ?? null, index: checked + result.first_broken.index, reason: result.first_broken.reason },
        };
      }
      checked += entries.length;
      expected = result.last_hash;
      afterSeq = entries[entries.length - 1]!.seq;
    }
  }

  /**
   * Retention: removes the chain prefix older than `cutoff` (never anything younger than 2555
   * days by the database clock) and audits the purge. Returns the number of rows removed.
   */
  async purgeBefore(cutoff: Date, ctx: AuditContext = { actor: SYSTEM_ACTOR }): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ n: number }>('SELECT audit_log_purge($1::timestamptz) AS n', [cutoff.toISOString()]);
      const n = Number(rows[0]?.n ?? 0);
      if (n > 0) {
        await this.audit(tx, ctx, { action: 'purge', resource_type: 'audit_log', resource_id: `rows=${n};before=${cutoff.toISOString()}`, outcome: 'success', risk_level: 'high' });
      }
      return n;
    });
  }
}
