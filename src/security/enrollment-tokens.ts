/**
 * Agent enrollment tokens (SPEC §4.2): short-lived bearer tokens that may only register agents.
 *
 * A token is `mcp_et_` + 256 random bits (base64url), shown once; only its SHA-256 is stored
 * (a plain hash suffices for a high-entropy random value). Each registration takes one use with
 * a single atomic `UPDATE … SET uses_left = uses_left - 1 WHERE uses_left > 0 AND expires_at > now`,
 * so `uses` concurrent registrations can never become `uses + 1`. A registration that then fails
 * (validation, taken agent_id) gives its use back with `refund`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { AppError, ValidationError, isUuid, newId, systemClock, type Clock } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import type { EnrollmentTokenView } from '../contracts/views.ts';

export const ENROLLMENT_TOKEN_PREFIX = 'mcp_et_';
export const ENROLLMENT_MAX_USES = 1000;
/** Longest lifetime accepted (7 days): these are meant to be short-lived. */
export const ENROLLMENT_MAX_TTL_SECONDS = 7 * 86400;

export type EnrollmentRole = 'worker' | 'supervisor' | 'admin' | 'system';

export interface EnrollmentTokenInput {
  uses: number;
  ttl_seconds: number;
  role?: EnrollmentRole;
  created_by?: string | null;
}

export interface IssuedEnrollmentToken {
  token_id: string;
  enrollment_token: string;
  expires_at: string;
  uses: number;
  role: EnrollmentRole;
}

/** What one successful `consume` grants: a registration with this role. */
export interface EnrollmentGrant {
  token_id: string;
  role: EnrollmentRole;
  uses_left: number;
}

/** An enrollment token as listed (contracts/views.ts). */
export type EnrollmentTokenSummary = EnrollmentTokenView;

const SUMMARY = `token_id::text AS token_id, role, uses_left, uses_total, expires_at, created_by, created_at, revoked_at,
  CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= now() THEN 'expired' WHEN uses_left = 0 THEN 'used_up' ELSE 'active' END AS status`;

interface SummaryRow extends Omit<EnrollmentTokenSummary, 'expires_at' | 'created_at' | 'revoked_at'> {
  expires_at: Date;
  created_at: Date;
  revoked_at: Date | null;
  total_count?: number;
}

const toSummary = ({ total_count: _, ...r }: SummaryRow): EnrollmentTokenSummary => ({
  ...r, expires_at: r.expires_at.toISOString(), created_at: r.created_at.toISOString(), revoked_at: r.revoked_at?.toISOString() ?? null,
});

export function isEnrollmentToken(token: string | null | undefined): token is string {
  return typeof token === 'string' && token.startsWith(ENROLLMENT_TOKEN_PREFIX);
}

export function hashEnrollmentToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class EnrollmentTokens {
  private readonly clock: Clock;

  constructor(private readonly db: Db, opts: { clock?: Clock } = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  async create(input: EnrollmentTokenInput, q: Queryable = this.db): Promise<IssuedEnrollmentToken> {
    const errors: { field: string; message: string }[] = [];
    if (!Number.isSafeInteger(input.uses) || input.uses < 1 || input.uses > ENROLLMENT_MAX_USES) errors.push({ field: 'uses', message: `must be an integer from 1 to ${ENROLLMENT_MAX_USES}` });
    if (!Number.isSafeInteger(input.ttl_seconds) || input.ttl_seconds < 1 || input.ttl_seconds > ENROLLMENT_MAX_TTL_SECONDS) errors.push({ field: 'ttl_seconds', message: `must be an integer from 1 to ${ENROLLMENT_MAX_TTL_SECONDS}` });
    if (errors.length) throw new ValidationError('The enrollment token request is invalid.', errors);
    const token = `${ENROLLMENT_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const tokenId = newId();
    const role = input.role ?? 'worker';
    const expiresAt = new Date(this.clock.now() + input.ttl_seconds * 1000).toISOString();
    await q.query(
      `INSERT INTO enrollment_tokens (token_id, token_hash, uses_left, uses_total, role, expires_at, created_by) VALUES ($1::uuid, $2, $3, $3, $4, $5::timestamptz, $6)`,
      [tokenId, hashEnrollmentToken(token), input.uses, role, expiresAt, input.created_by ?? null],
    );
    return { token_id: tokenId, enrollment_token: token, expires_at: expiresAt, uses: input.uses, role };
  }

  /**
   * The live token `token` is (known, not revoked, not expired — possibly used up), without
   * taking a use: registration identifies the caller by it before its rate limit and
   * Idempotency-Key run, and takes the use only after them (`consume`).
   */
  async find(token: string, q: Queryable = this.db): Promise<Omit<EnrollmentGrant, 'uses_left'> | null> {
    if (!isEnrollmentToken(token)) return null;
    const { rows } = await q.query<Omit<EnrollmentGrant, 'uses_left'>>(
      'SELECT token_id::text AS token_id, role FROM enrollment_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2::timestamptz',
      [hashEnrollmentToken(token), new Date(this.clock.now()).toISOString()],
    );
    return rows[0] ?? null;
  }

  /**
   * Takes one use of `token`. Throws 401 INVALID_TOKEN when it is unknown, expired, revoked or
   * used up (one answer for all, no oracle).
   */
  async consume(token: string, q: Queryable = this.db): Promise<EnrollmentGrant> {
    if (!isEnrollmentToken(token)) throw new AppError('INVALID_TOKEN');
    const { rows } = await q.query<{ token_id: string; role: EnrollmentRole; uses_left: number }>(
      `UPDATE enrollment_tokens SET uses_left = uses_left - 1
       WHERE token_hash = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2::timestamptz
       RETURNING token_id::text AS token_id, role, uses_left`,
      [hashEnrollmentToken(token), new Date(this.clock.now()).toISOString()],
    );
    if (!rows[0]) throw new AppError('INVALID_TOKEN', 'The enrollment token is invalid, expired or used up.');
    return rows[0];
  }

  /** Gives back the use taken by a registration that failed afterwards. */
  async refund(grant: EnrollmentGrant, q: Queryable = this.db): Promise<void> {
    await q.query('UPDATE enrollment_tokens SET uses_left = uses_left + 1 WHERE token_id = $1::uuid AND uses_left < uses_total', [grant.token_id]);
  }

  /** Newest first (until the retention job purges them: expired or used up). Never the token's hash. */
  async list(limit: number, offset: number, q: Queryable = this.db): Promise<{ tokens: EnrollmentTokenSummary[]; total: number }> {
    const { rows } = await q.query<SummaryRow>(
      `SELECT ${SUMMARY}, count(*) OVER ()::int AS total_count FROM enrollment_tokens ORDER BY created_at DESC, token_id DESC LIMIT $1 OFFSET $2`, [limit, offset]);
    const total = rows[0]?.total_count ?? (offset > 0 ? (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM enrollment_tokens')).rows[0]!.n : 0);
    return { tokens: rows.map(toSummary), total };
  }

  /**
   * Revokes the token (it registers no more agents; agents it registered keep working). Already
   * revoked: unchanged, returned as it is. Null when there is no such token (a non-UUID id included).
   */
  async revoke(tokenId: string, q: Queryable = this.db): Promise<EnrollmentTokenSummary | null> {
    if (!isUuid(tokenId)) return null;
    const { rows } = await q.query<SummaryRow>(
      `UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE token_id = $1::uuid RETURNING ${SUMMARY}`, [tokenId.toLowerCase()]);
    return rows[0] ? toSummary(rows[0]) : null;
  }

  /** Deletes tokens expired or used up before `cutoff` (retention housekeeping). */
  async purge(cutoff: Date, q: Queryable = this.db): Promise<number> {
    const { rowCount } = await q.query('DELETE FROM enrollment_tokens WHERE expires_at < $1::timestamptz OR (uses_left = 0 AND created_at < $1::timestamptz)', [cutoff.toISOString()]);
    return rowCount;
  }
}
