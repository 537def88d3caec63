/**
 * AuditLog: the append-only, hash-chained audit log of SPEC §9, stored in `audit_log`
 * (migration 0003).
 *
 * - `append(q, entries)` writes IN THE CALLER'S TRANSACTION into `audit_pending` (migration
 *   0008): durable with the caller's commit, gone with its rollback, and it throws when the
 *   write fails, so the caller's request fails with it — an access that cannot be audited does
 *   not happen. It takes no lock, so audited transactions never queue behind each other.
 * - The chainer (`start`, `flush`, `stop`) links pending entries into the hash chain shortly
 *   after: it locks the chain's head row (`audit_head`, migration 0007; one chainer at a time
 *   across processes), chains the entries after the head with the key ring's `auditChainKey`
 *   (HMAC), inserts them into `audit_log` (`seq` order is chain order), deletes them from
 *   `audit_pending` and moves the head, in one transaction.
 * - `list(filters, page)` for GET /api/v1/audit; `verify()` pages through the whole chain and
 *   reports the first broken link (edit, deletion, insertion, reorder). Both chain what is
 *   pending first, so they see every committed entry.
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
  canonicalBody,
  linkHash,
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
  /** Failures of background chaining (the entries stay pending and are chained by a later run). */
  onError?: (err: unknown) => void;
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

const AUDIT_OUTCOMES: ReadonlySet<string> = new Set<AuditOutcome>(['success', 'failure', 'denied']);
const AUDIT_RISK_LEVELS: ReadonlySet<string> = new Set<AuditRiskLevel>(['low', 'medium', 'high', 'critical']);
const ACTOR_TYPES: ReadonlySet<string> = new Set(['user', 'agent', 'system', 'anonymous']);

/** Audit entries ready to be written into `audit_pending` by a caller's own statement. */
export interface PendingAudit {
  entries: AuditEntryBody[];
  /** Parameters of `pendingAuditSelect`. */
  audit_ids: string[];
  bodies: string[];
}

/**
 * The `SELECT` that feeds `INSERT INTO audit_pending (audit_id, body)` from a `PendingAudit`
 * passed as parameters `$ids` (audit_ids) and `$bodies`.
 */
export function pendingAuditSelect(ids: number, bodies: number): string {
  return `SELECT * FROM unnest($${ids}::uuid[], $${bodies}::text[])`;
}

/**
 * A pending body (JSON, as written by `append` or built in SQL) as the chain will store it and
 * `verify` will read it back: the hash must cover exactly that. Absent and null optional fields
 * read back as null; `resource_ids` only when it names something (else the column is NULL).
 */
function storedBody(o: Record<string, unknown>): AuditEntryBody {
  const ids = o.resource_ids;
  return {
    audit_id: String(o.audit_id),
    timestamp: o.timestamp as string,
    actor: o.actor as AuditActor,
    action: o.action as AuditAction,
    resource_type: o.resource_type as string,
    resource_id: (o.resource_id as string | null | undefined) ?? null,
    ...(Array.isArray(ids) && ids.length ? { resource_ids: ids as string[] } : {}),
    fields: o.fields as string[],
    data_classification: (o.data_classification as DataClassification | null | undefined) ?? null,
    outcome: o.outcome as AuditOutcome,
    request_id: (o.request_id as string | null | undefined) ?? null,
    risk_level: o.risk_level as AuditRiskLevel,
  };
}

/** Entries moved into the chain per chainer transaction. */
const CHAIN_BATCH = 1000;
/** How long after an append the chainer runs (its caller's transaction commits meanwhile). */
const CHAIN_DELAY_MS = 100;

/** Moves pending entries (ids in chain order) into audit_log with their links, and the head. */
const CHAIN_INSERT = `WITH h AS (UPDATE audit_head SET hash = $4 WHERE id)
  INSERT INTO audit_log (audit_id, ts, at, actor, action, resource_type, resource_id, resource_ids, fields, data_classification, outcome, request_id, risk_level, prev_hash, hash)
  SELECT b.audit_id, b."timestamp", b."timestamp"::timestamptz, b.actor, b.action, b.resource_type, b.resource_id,
    CASE WHEN jsonb_typeof(b.resource_ids) = 'array' THEN (SELECT array_agg(r) FROM jsonb_array_elements_text(b.resource_ids) AS r) END, b.fields, b.data_classification, b.outcome,
    b.request_id, b.risk_level, x.prev_hash, x.hash
  FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS x(id, prev_hash, hash, n)
  JOIN audit_pending p ON p.id = x.id
  -- The body is parsed once per row: a function in FROM runs once, where \`p.body::jsonb ->> …\`
  -- in the select list parsed it again for every field (a third of the chainer's time).
  CROSS JOIN LATERAL jsonb_to_record(p.body::jsonb) AS b(audit_id uuid, "timestamp" text, actor jsonb, action text, resource_type text, resource_id text,
    resource_ids jsonb, fields jsonb, data_classification text, outcome text, request_id text, risk_level text)
  ORDER BY x.n`;

export class AuditLog {
  readonly #key: KeyObject;
  readonly clock: Clock;
  readonly #onError: (err: unknown) => void;
  /** The chainer's runs in this process, one after another. */
  #chaining: Promise<void> = Promise.resolve();
  /** A background run is queued and has not started: further triggers join it. */
  #queued = false;
  #timer: NodeJS.Timeout | undefined;
  #interval: NodeJS.Timeout | undefined;
  /** Background chaining runs only between `start` and `stop`; otherwise readers and `flush` chain. */
  #started = false;

  constructor(private readonly db: Db, opts: AuditLogOptions) {
    this.#key = opts.key;
    this.clock = opts.clock ?? systemClock;
    this.#onError = opts.onError ?? (() => {});
  }

  /**
   * Appends `entries` (in order) inside the transaction `q` (or, given the `Db`, in a statement
   * of their own): they are stored in `audit_pending` (migration 0008), durable and readable
   * through this log the moment `q` commits, gone if it rolls back. Throws on any failure — the
   * caller's transaction should then roll back: an access that cannot be audited does not
   * happen. No lock is taken, so audited transactions never queue behind each other; the
   * chainer links the entries into the hash chain shortly after (`flush` does it at once).
   * Returns the entries as they will be chained.
   */
  async append(q: Queryable, entries: AuditEntryInput[]): Promise<AuditEntryBody[]> {
    const pending = this.prepare(entries);
    if (pending.audit_ids.length === 0) return [];
    try {
      await q.query(`INSERT INTO audit_pending (audit_id, body) ${pendingAuditSelect(1, 2)}`, [pending.audit_ids, pending.bodies]);
    } catch (err) {
      throw new AppError('INTERNAL_ERROR', 'The audit log could not be written.', { cause: err, expose: false });
    }
    return pending.entries;
  }

  /** Entries were written into `audit_pending` by a caller's own SQL (`PhiAccessLog.agentWritesSql`): chain them soon. */
  noteAppended(): void {
    this.#schedule();
  }

  /**
   * The rows `append` would insert, for a caller that writes them in a statement of its own
   * (one statement for its rows and their audit: see `pendingAuditSelect`). Throws for an entry
   * the chain could not store. Once that statement commits, the chainer takes them like any
   * appended entry.
   */
  prepare(entries: AuditEntryInput[]): PendingAudit {
    const bodies = entries.map((input) => this.#body(input));
    if (bodies.length) this.#schedule();
    return { entries: bodies, audit_ids: bodies.map((b) => b.audit_id), bodies: bodies.map((b) => canonicalBody(b)) };
  }

  /**
   * Chains in the background: shortly after every append, and every `periodMs` for entries
   * appended by other processes or committed after a run (0 = only after appends).
   */
  start(periodMs: number): void {
    this.#started = true;
    if (periodMs > 0 && !this.#interval) {
      this.#interval = setInterval(() => this.#background(), periodMs);
      this.#interval.unref();
    }
  }

  /** Stops the background chainer and chains what is pending (shutdown). */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#interval) clearInterval(this.#interval);
    this.#timer = this.#interval = undefined;
    await this.flush();
  }

  /**
   * Chains every entry committed before the call (waiting for another process's chainer if it
   * holds the head). Readers of the log call it first, so they see every committed entry.
   */
  async flush(): Promise<void> {
    const run = this.#chaining.then(() => this.#chainAll(true));
    this.#chaining = run.catch(() => {});
    await run;
  }

  #schedule(): void {
    if (this.#timer || !this.#started) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#background();
    }, CHAIN_DELAY_MS);
    this.#timer.unref();
  }

  #background(): void {
    if (this.#queued) return;
    this.#queued = true;
    this.#chaining = this.#chaining.then(() => {
      this.#queued = false;
      return this.#chainAll(false);
    }).catch((err: unknown) => this.#onError(err));
  }

  /**
   * Moves pending entries into the chain, a batch per transaction, until none is left. The
   * head row's lock makes one chainer at a time (across processes) extend the chain; without
   * `wait`, a run that finds it taken leaves the work to its holder (which runs until nothing
   * is pending) or to the next run.
   */
  async #chainAll(wait: boolean): Promise<void> {
    for (;;) {
      const moved = await this.db.transaction(async (tx) => {
        const head = await this.#lockHead(tx, wait);
        if (head === null) return 0;
        const { rows } = await tx.query<{ id: number | string; body: string }>('SELECT id, body FROM audit_pending ORDER BY id LIMIT $1', [CHAIN_BATCH]);
        if (rows.length === 0) return 0;
        const prevs: string[] = [];
        const hashes: string[] = [];
        let prev = head;
        for (const r of rows) {
          prevs.push(prev);
          prev = linkHash(prev, canonicalBody(storedBody(JSON.parse(r.body) as Record<string, unknown>)), this.#key);
          hashes.push(prev);
        }
        const ids = rows.map((r) => r.id);
        await tx.query(CHAIN_INSERT, [ids, prevs, hashes, prev]);
        await tx.query('DELETE FROM audit_pending WHERE id = ANY($1::bigint[])', [ids]);
        return rows.length;
      });
      if (moved < CHAIN_BATCH) return;
    }
  }

  /** Locks the head row until the transaction ends and returns the head (recreating a lost row); null when taken and not `wait`. */
  async #lockHead(q: Queryable, wait: boolean): Promise<string | null> {
    const { rows } = await q.query<{ hash: string }>(`SELECT hash FROM audit_head WHERE id FOR UPDATE${wait ? '' : ' SKIP LOCKED'}`);
    if (rows[0]) return rows[0].hash;
    const exists = await q.query('SELECT 1 FROM audit_head WHERE id');
    if (exists.rows.length) return null; // taken by another chainer
    await q.query('INSERT INTO audit_head (id, hash) VALUES (true, $1) ON CONFLICT (id) DO NOTHING', [await this.headHash(q)]);
    return this.#lockHead(q, wait);
  }

  /** The entry as hashed; refuses what the chain could not store, before the caller commits it. */
  #body(input: AuditEntryInput): AuditEntryBody {
    const outcome = input.outcome ?? 'success';
    const classification = input.data_classification ?? null;
    const risk = input.risk_level ?? defaultRiskLevel(input.action, outcome, classification);
    if (typeof input.action !== 'string' || !input.action || typeof input.resource_type !== 'string' || !input.resource_type
      || !AUDIT_OUTCOMES.has(outcome) || !AUDIT_RISK_LEVELS.has(risk) || !ACTOR_TYPES.has(input.actor?.type)) {
      throw new AppError('INTERNAL_ERROR', 'The audit entry is invalid.', { expose: false });
    }
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
      risk_level: risk,
    };
  }

  /** One entry for `ctx`: the convenient form for services. */
  async audit(q: Queryable, ctx: AuditContext, entry: Omit<AuditEntryInput, 'actor' | 'request_id'> & { request_id?: string | null }): Promise<AuditEntryBody> {
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

  async list(filters: AuditFilters, page: AuditPage): Promise<{ entries: StoredAuditEntry[]; total: number }> {
    await this.flush();
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
    const total = await this.db.query<{ n: number | string }>(`SELECT count(*)::int AS n FROM audit_log ${w}`, params);
    const { rows } = await this.db.query<AuditRow>(
      `SELECT ${COLUMNS} FROM audit_log ${w} ORDER BY seq ${order} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, page.limit, page.offset],
    );
    return { entries: rows.map(toEntry), total: Number(total.rows[0]?.n ?? 0) };
  }

  async get(auditId: string): Promise<StoredAuditEntry> {
    await this.flush();
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
    await this.flush();
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
    await this.flush(); // what is pending belongs to the chain being cut
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
