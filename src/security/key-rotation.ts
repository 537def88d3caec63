/**
 * KeyRotation: field-key and signing-key rotation (SPEC §9 "versioned keys that rotate with
 * `mcp keys rotate`, old data re-encrypted in the background"; §4.3 signing keys).
 *
 * Field keys. The ring is derived from the master key and the number of versions, so a
 * rotation only inserts the next row into `key_versions` (migration 0004) — no key material is
 * ever stored. Every process:
 * - builds its ring from that count at start (`KeyRotation.loadVersionCount`);
 * - picks up a newer count on the coordination message `mcp:keys` (instant with Redis) and by
 *   polling the table (`pollMs`, the safety net), then writes with the new key;
 * - can meanwhile still *decrypt* values written under a newer key, because compose builds the
 *   ring with a `lookahead` (see KeyRing), so a rotation never makes another process fail.
 *
 * Re-encryption. `runJob()` (the leader's periodic job; `startJob`/`stopJob` follow leadership)
 * moves every sealed column to the current key with `FieldCipher.needsReencrypt/reencrypt`,
 * in batches ordered by primary key. Each batch is one compare-and-set UPDATE
 * (`… AND col = <the ciphertext we read>`), so a value rewritten concurrently by live traffic
 * (a task completing, a pipeline advancing) is never overwritten with stale content — the
 * concurrent writer already used the current key, or the next pass picks it up. A run repeats
 * passes until one finds nothing left to move (the last pass is the verification), waits
 * `settleMs` after a rotation before starting (so every process has switched its writes), and
 * is resumable: what is left is found by its key id, so a crash or a lost leadership simply
 * means the next leader's run scans again and moves only the rest. Progress and completion are
 * recorded in `key_versions`. A value that cannot be decrypted (tampered with, moved) is left
 * as it is and counted: it keeps failing closed when read.
 *
 * Signing keys. `rotateSigningKey()` calls `SigningKeys.rotate(overlap)` with the longest token
 * lifetime as the overlap, so every live token keeps verifying until it expires; other
 * processes reload their signing keys on the same message / poll.
 *
 * `rotateKeys(rotation, {field, signing})` is the entry point the CLI (`mcp keys rotate
 * [--signing]`) and admin tooling call.
 */
import type { Coordination, Unsubscribe } from '../coordination/index.ts';
import type { Db } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditContext, type AuditLog } from './audit-log.ts';
import { CIPHERTEXT_PREFIX, DecryptionError, type FieldCipher } from './field-cipher.ts';
import type { KeyRing } from './key-ring.ts';

/** Coordination channel announcing a rotation to every process. */
export const KEYS_CHANNEL = 'mcp:keys';

/** A column holding FieldCipher output, with how its associated data's row id is formed. */
export interface SealedColumn {
  table: string;
  column: string;
  /** Primary key columns, in order, with their SQL types (for the keyset cursor). */
  key: ReadonlyArray<{ name: string; type: 'uuid' | 'text' }>;
  /** The AAD row id from the key values (as text, in `key` order). */
  rowId(keys: readonly string[]): string;
}

const single = (name: string, type: 'uuid' | 'text') => ({ key: [{ name, type }], rowId: (k: readonly string[]) => k[0]! });

/** Every sealed column of the schema (see the repositories that write them). */
export const SEALED_COLUMNS: readonly SealedColumn[] = Object.freeze([
  { table: 'tasks', column: 'parameters', ...single('task_id', 'uuid') },
  { table: 'tasks', column: 'result', ...single('task_id', 'uuid') },
  { table: 'pipelines', column: 'input_data', ...single('pipeline_id', 'uuid') },
  { table: 'pipelines', column: 'context', ...single('pipeline_id', 'uuid') },
  { table: 'pipelines', column: 'output', ...single('pipeline_id', 'uuid') },
  { table: 'users', column: 'mfa_secret', ...single('user_id', 'uuid') },
  { table: 'users', column: 'mfa_pending_secret', ...single('user_id', 'uuid') },
  { table: 'signing_keys', column: 'private_key', ...single('kid', 'text') },
  {
    table: 'idempotency_keys', column: 'response_body',
    key: [{ name: 'principal', type: 'text' }, { name: 'key', type: 'text' }],
    rowId: (k: readonly string[]) => `${k[0]}|${k[1]}`,
  },
]);

/** What signing rotation needs (auth's SigningKeys satisfies it). */
export interface RotatableSigningKeys {
  rotate(overlapSeconds: number): Promise<string>;
  reload(): Promise<void>;
}

export interface KeyRotationOptions {
  /** Announces rotations to other processes (and hears theirs). */
  coord?: Coordination | null;
  /** Rotations and re-encryption runs are audited when given. */
  audit?: AuditLog | null;
  signingKeys?: RotatableSigningKeys | null;
  /** Overlap for signing rotation: the longest token lifetime in seconds (default 24 h). */
  signingOverlapSeconds?: number;
  /** How often the version count is re-read, and the leader's job checks for work (default 5 s). */
  pollMs?: number;
  /** Rows per re-encryption batch (default 200). */
  batchSize?: number;
  /** Wait after a rotation before re-encrypting, so every process writes with the new key (default 2 × pollMs, 0 with in-process coordination). */
  settleMs?: number;
  /** Passes per run at most (default 5). */
  maxPasses?: number;
  columns?: readonly SealedColumn[];
  onError?: (err: unknown, what: string) => void;
  onInfo?: (msg: string, data: Record<string, unknown>) => void;
}

export interface ColumnStats {
  table: string;
  column: string;
  reencrypted: number;
  conflicts: number;
  failed: number;
}

export interface ReencryptResult {
  /** The key everything was moved to. */
  kid: string;
  passes: number;
  reencrypted: number;
  failed: number;
  /** True when the last pass found nothing left to move (except undecryptable values). */
  complete: boolean;
  columns: ColumnStats[];
}

export interface KeyStatus {
  current: string;
  versions: number;
  /** Sealed values per key id, per column. */
  by_column: Array<{ table: string; column: string; kids: Record<string, number> }>;
  /** Newest version row. */
  latest: { version: number; created_at: string; reencrypt_started_at: string | null; reencrypt_completed_at: string | null; reencrypted_rows: number; reencrypt_failed_rows: number } | null;
}

interface VersionRow {
  version: number;
  created_at: Date;
  reencrypt_started_at: Date | null;
  reencrypt_completed_at: Date | null;
  reencrypted_rows: number | string;
  reencrypt_failed_rows: number | string;
}

const IDENT = /^[a-z_][a-z0-9_]*$/;

export class KeyRotation {
  readonly #opts: Required<Pick<KeyRotationOptions, 'pollMs' | 'batchSize' | 'settleMs' | 'maxPasses' | 'signingOverlapSeconds'>>;
  readonly #columns: readonly SealedColumn[];
  #pollTimer: NodeJS.Timeout | undefined;
  #jobTimer: NodeJS.Timeout | undefined;
  #unsubscribe: Unsubscribe | undefined;
  #signingSeen = -1;
  #running: Promise<ReencryptResult | null> | null = null;
  #abort = false;

  constructor(
    private readonly db: Db,
    readonly ring: KeyRing,
    private readonly cipher: FieldCipher,
    private readonly opts: KeyRotationOptions = {},
  ) {
    const pollMs = opts.pollMs ?? 5000;
    this.#opts = {
      pollMs,
      batchSize: opts.batchSize ?? 200,
      settleMs: opts.settleMs ?? (opts.coord && opts.coord.kind !== 'memory' ? 2 * pollMs : 0),
      maxPasses: opts.maxPasses ?? 5,
      signingOverlapSeconds: opts.signingOverlapSeconds ?? 86400,
    };
    this.#columns = opts.columns ?? SEALED_COLUMNS;
    for (const c of this.#columns) {
      if (![c.table, c.column, ...c.key.map((k) => k.name)].every((s) => IDENT.test(s))) throw new Error(`Invalid sealed column ${c.table}.${c.column}`);
    }
  }

  /** The persisted number of field-key versions (1 before any rotation). */
  static async loadVersionCount(db: Pick<Db, 'query'>): Promise<number> {
    const { rows } = await db.query<{ n: number | null }>('SELECT max(version)::int AS n FROM key_versions');
    return Math.max(1, Number(rows[0]?.n ?? 1));
  }

  get currentKid(): string {
    return this.ring.current;
  }

  /** Brings this process's ring (and signing keys) up to date with the database. */
  async sync(): Promise<string[]> {
    const added = this.ring.syncTo(await KeyRotation.loadVersionCount(this.db));
    if (added.length) this.opts.onInfo?.('field key ring updated', { current: this.ring.current, added });
    const signing = this.opts.signingKeys;
    if (signing) {
      const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM signing_keys');
      const n = Number(rows[0]?.n ?? 0);
      if (this.#signingSeen >= 0 && n !== this.#signingSeen) await signing.reload();
      this.#signingSeen = n;
    }
    return added;
  }

  /** Listens for rotations by other processes (message + polling). */
  async start(): Promise<void> {
    await this.sync();
    if (this.opts.coord) {
      this.#unsubscribe = await this.opts.coord.subscribe(KEYS_CHANNEL, () => {
        this.sync().then(() => this.#kickJob(), (err: unknown) => this.opts.onError?.(err, 'key sync'));
      });
    }
    this.#pollTimer = setInterval(() => {
      this.sync().catch((err: unknown) => this.opts.onError?.(err, 'key sync'));
    }, this.#opts.pollMs);
    this.#pollTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    await this.stopJob();
    const unsub = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsub?.().catch(() => {});
  }

  /**
   * Adds the next field-key version, makes it current here, tells the other processes, and
   * (on the leader) starts the re-encryption. Returns the new key id.
   */
  async rotateFieldKey(ctx: AuditContext = { actor: SYSTEM_ACTOR }): Promise<{ kid: string; version: number }> {
    const version = await this.db.transaction(async (tx) => {
      await tx.query('LOCK TABLE key_versions IN EXCLUSIVE MODE');
      const { rows } = await tx.query<{ n: number | null }>('SELECT max(version)::int AS n FROM key_versions');
      const next = Math.max(1, Number(rows[0]?.n ?? 1)) + 1;
      await tx.query('INSERT INTO key_versions (version, created_by) VALUES ($1, $2)', [next, ctx.actor.id ? `${ctx.actor.type}:${ctx.actor.id}` : ctx.actor.type]);
      await this.opts.audit?.audit(tx, ctx, { action: 'key_rotate', resource_type: 'field_key', resource_id: `k${next}`, outcome: 'success', risk_level: 'medium' });
      return next;
    });
    this.ring.syncTo(version);
    await this.#announce({ kind: 'field', version });
    this.#kickJob();
    return { kid: `k${version}`, version };
  }

  /** New signing key; the previous ones keep verifying for the longest token lifetime. */
  async rotateSigningKey(ctx: AuditContext = { actor: SYSTEM_ACTOR }): Promise<{ kid: string; overlap_seconds: number }> {
    const signing = this.opts.signingKeys;
    if (!signing) throw new Error('Signing-key rotation is not configured.');
    const overlap = this.#opts.signingOverlapSeconds;
    const kid = await signing.rotate(overlap);
    await this.opts.audit?.audit(this.db, ctx, { action: 'key_rotate', resource_type: 'signing_key', resource_id: kid, outcome: 'success', risk_level: 'medium' });
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM signing_keys');
    this.#signingSeen = Number(rows[0]?.n ?? 0);
    await this.#announce({ kind: 'signing', kid });
    return { kid, overlap_seconds: overlap };
  }

  async #announce(message: Record<string, unknown>): Promise<void> {
    try {
      await this.opts.coord?.publish(KEYS_CHANNEL, message);
    } catch (err) {
      // polling picks it up anyway
      this.opts.onError?.(err, 'key rotation announcement');
    }
  }

  // ---- the background re-encryption -------------------------------------------------------

  /** Runs the job now and then every `pollMs` (call on becoming leader). */
  startJob(): void {
    if (this.#jobTimer) return;
    this.#abort = false;
    this.#jobTimer = setInterval(() => this.#kickJob(), this.#opts.pollMs);
    this.#jobTimer.unref();
    this.#kickJob();
  }

  /** Stops scheduling and lets a running batch finish (call on losing leadership/shutdown). */
  async stopJob(): Promise<void> {
    if (this.#jobTimer) clearInterval(this.#jobTimer);
    this.#jobTimer = undefined;
    this.#abort = true;
    await this.#running?.catch(() => null);
  }

  /** Starts a run when this process holds the job (leader) and none is running. */
  #kickJob(): void {
    if (!this.#jobTimer || this.#running) return;
    this.runJob().catch((err: unknown) => this.opts.onError?.(err, 're-encryption'));
  }

  /** Resolves when no re-encryption run is in progress. */
  async settle(): Promise<void> {
    while (this.#running) await this.#running.catch(() => null);
  }

  /**
   * One job tick: when the newest version's re-encryption is not recorded as complete and the
   * settle delay has passed, runs it. Returns the run's result, or null when there was nothing to do.
   */
  async runJob(): Promise<ReencryptResult | null> {
    if (this.#running) return this.#running;
    const run = async (): Promise<ReencryptResult | null> => {
      await this.sync();
      const latest = await this.#latest();
      if (!latest || latest.reencrypt_completed_at) return null;
      if (latest.version > this.ring.versions) return null;
      if (Date.now() - latest.created_at.getTime() < this.#opts.settleMs) return null;
      return this.reencryptAll();
    };
    this.#running = run().finally(() => { this.#running = null; });
    return this.#running;
  }

  async #latest(): Promise<VersionRow | null> {
    const { rows } = await this.db.query<VersionRow>('SELECT version, created_at, reencrypt_started_at, reencrypt_completed_at, reencrypted_rows, reencrypt_failed_rows FROM key_versions ORDER BY version DESC LIMIT 1');
    return rows[0] ?? null;
  }

  /**
   * Moves every sealed value to the current key (passes until one finds nothing to move) and
   * records the progress in `key_versions`. Safe to run while traffic writes the same rows.
   */
  async reencryptAll(ctx: AuditContext = { actor: SYSTEM_ACTOR }): Promise<ReencryptResult> {
    const kid = this.ring.current;
    const version = this.ring.versions;
    await this.db.query('UPDATE key_versions SET reencrypt_started_at = COALESCE(reencrypt_started_at, now()) WHERE version = $1', [version]);
    const totals = new Map<string, ColumnStats>(this.#columns.map((c) => [`${c.table}.${c.column}`, { table: c.table, column: c.column, reencrypted: 0, conflicts: 0, failed: 0 }]));
    let passes = 0;
    let complete = false;
    let failed = 0;
    while (passes < this.#opts.maxPasses && !this.#abort) {
      passes++;
      let moved = 0;
      failed = 0;
      for (const c of this.#columns) {
        if (this.#abort) break;
        const s = await this.#reencryptColumn(c, version);
        const t = totals.get(`${c.table}.${c.column}`)!;
        t.reencrypted += s.reencrypted;
        t.conflicts += s.conflicts;
        t.failed = s.failed;
        moved += s.reencrypted + s.conflicts;
        failed += s.failed;
      }
      if (this.ring.current !== kid) break; // rotated again meanwhile: the next run targets the newer key
      if (moved === 0 && !this.#abort) {
        complete = true;
        break;
      }
    }
    const reencrypted = [...totals.values()].reduce((n, t) => n + t.reencrypted, 0);
    if (complete) {
      await this.db.transaction(async (tx) => {
        await tx.query('UPDATE key_versions SET reencrypt_failed_rows = $2 WHERE version = $1', [version, failed]);
        await tx.query('UPDATE key_versions SET reencrypt_completed_at = now() WHERE version <= $1 AND reencrypt_completed_at IS NULL', [version]);
        await this.opts.audit?.audit(tx, ctx, {
          action: 'key_reencrypt', resource_type: 'field_key', resource_id: kid,
          fields: this.#columns.map((c) => `${c.table}.${c.column}`), outcome: failed ? 'failure' : 'success', risk_level: failed ? 'high' : 'medium',
        });
      });
    }
    const result: ReencryptResult = { kid, passes, reencrypted, failed, complete, columns: [...totals.values()] };
    this.opts.onInfo?.('re-encryption run', { kid, passes, reencrypted, failed, complete });
    return result;
  }

  async #reencryptColumn(c: SealedColumn, version: number): Promise<{ reencrypted: number; conflicts: number; failed: number }> {
    const kid = `k${version}`;
    const keyList = c.key.map((k) => k.name).join(', ');
    const keySelect = c.key.map((k, i) => `${k.name}::text AS k${i}`).join(', ');
    const cursorCond = `(${keyList}) > (${c.key.map((k, i) => `$${i + 3}::${k.type}`).join(', ')})`;
    const base = `SELECT ${keySelect}, ${c.column} AS v FROM ${c.table}
      WHERE ${c.column} LIKE '${CIPHERTEXT_PREFIX}%' AND ${c.column} NOT LIKE $1`;
    let cursor: string[] | null = null;
    let reencrypted = 0;
    let conflicts = 0;
    let failed = 0;
    for (;;) {
      if (this.#abort) break;
      const params: unknown[] = [`${CIPHERTEXT_PREFIX}${kid}:%`, this.#opts.batchSize];
      if (cursor) params.push(...cursor);
      const { rows }: { rows: Array<Record<string, string>> } = await this.db.query<Record<string, string>>(
        `${base} ${cursor ? `AND ${cursorCond}` : ''} ORDER BY ${keyList} LIMIT $2`, params);
      if (rows.length === 0) break;
      const keys: string[][] = c.key.map(() => []);
      const olds: string[] = [];
      const news: string[] = [];
      for (const r of rows) {
        const ids = c.key.map((_, i) => r[`k${i}`]!);
        const old = r.v!;
        if (!this.cipher.needsReencrypt(old)) continue;
        try {
          news.push(this.cipher.reencrypt(old, { table: c.table, column: c.column, rowId: c.rowId(ids) }));
        } catch (err) {
          if (!(err instanceof DecryptionError)) throw err;
          failed++;
          continue;
        }
        olds.push(old);
        ids.forEach((id, i) => keys[i]!.push(id));
      }
      if (olds.length) {
        const n = c.key.length;
        const unnestArgs = [...c.key.map((_, i) => `$${i + 1}::text[]`), `$${n + 1}::text[]`, `$${n + 2}::text[]`].join(', ');
        const alias = [...c.key.map((_, i) => `k${i}`), 'ov', 'nv'].join(', ');
        const match = c.key.map((k, i) => `t.${k.name} = x.k${i}::${k.type}`).join(' AND ');
        const res = await this.db.transaction(async (tx) => {
          const u = await tx.query(
            `UPDATE ${c.table} t SET ${c.column} = x.nv FROM unnest(${unnestArgs}) AS x(${alias}) WHERE ${match} AND t.${c.column} = x.ov`,
            [...keys, olds, news]);
          await tx.query('UPDATE key_versions SET reencrypted_rows = reencrypted_rows + $2 WHERE version = $1', [version, u.rowCount]);
          return u.rowCount;
        });
        reencrypted += res;
        conflicts += olds.length - res;
      }
      const last: Record<string, string> = rows[rows.length - 1]!;
      cursor = c.key.map((_, i): string => last[`k${i}`]!);
      if (rows.length < this.#opts.batchSize) break;
    }
    return { reencrypted, conflicts, failed };
  }

  /** Counts of sealed values per key id, per column, and the newest version's progress. */
  async status(): Promise<KeyStatus> {
    const byColumn: KeyStatus['by_column'] = [];
    for (const c of this.#columns) {
      const { rows } = await this.db.query<{ kid: string; n: number }>(
        `SELECT split_part(${c.column}, ':', 3) AS kid, count(*)::int AS n FROM ${c.table} WHERE ${c.column} LIKE '${CIPHERTEXT_PREFIX}%' GROUP BY 1`);
      byColumn.push({ table: c.table, column: c.column, kids: Object.fromEntries(rows.map((r) => [r.kid, Number(r.n)])) });
    }
    const l = await this.#latest();
    return {
      current: this.ring.current,
      versions: this.ring.versions,
      by_column: byColumn,
      latest: l ? {
        version: l.version,
        created_at: l.created_at.toISOString(),
        reencrypt_started_at: l.reencrypt_started_at?.toISOString() ?? null,
        reencrypt_completed_at: l.reencrypt_completed_at?.toISOString() ?? null,
        reencrypted_rows: Number(l.reencrypted_rows),
        reencrypt_failed_rows: Number(l.reencrypt_failed_rows),
      } : null,
    };
  }
}

export interface RotateKeysOptions {
  /** Rotate the field-encryption key (default true unless only `signing` is asked for). */
  field?: boolean;
  /** Rotate the JWT signing key. */
  signing?: boolean;
  /** Who asked (audited); the system by default. */
  ctx?: AuditContext;
}

export interface RotateKeysResult {
  field: { kid: string; version: number } | null;
  signing: { kid: string; overlap_seconds: number } | null;
}

/**
 * `mcp keys rotate [--signing]`: rotates the field key (`field`, the default) and/or the signing
 * key (`signing`). Field data is re-encrypted in the background by the leader's job.
 */
export async function rotateKeys(rotation: KeyRotation, opts: RotateKeysOptions = {}): Promise<RotateKeysResult> {
  const field = opts.field ?? !opts.signing;
  const out: RotateKeysResult = { field: null, signing: null };
  if (field) out.field = await rotation.rotateFieldKey(opts.ctx);
  if (opts.signing) out.signing = await rotation.rotateSigningKey(opts.ctx);
  return out;
}

/** The longest token lifetime (s): the overlap that lets every live token outlive a signing rotation. */
export function longestTokenLifetime(lifetimes: { user_access_ttl: number; user_refresh_ttl: number; agent_access_ttl: number; agent_refresh_ttl: number }): number {
  return Math.max(lifetimes.user_access_ttl, lifetimes.user_refresh_ttl, lifetimes.agent_access_ttl, lifetimes.agent_refresh_ttl);
}
