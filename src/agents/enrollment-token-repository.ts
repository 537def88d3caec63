/**
 * SQL for listing and revoking agent enrollment tokens (SPEC §4.2), read by the administrators
 * who issue them. Issuing and consuming live in security/EnrollmentTokens; these two belong
 * beside them and are here until that file can take them (they take a `Queryable`, so a revoke
 * and its audit entry share one transaction). Never reads or returns the token's hash.
 */
import type { Queryable } from '../store/index.ts';

/** An enrollment token as listed: what it grants and how much of it is left, never the secret. */
export interface EnrollmentTokenSummary {
  token_id: string;
  role: string;
  uses_left: number;
  uses_total: number;
  expires_at: string;
  created_by: string | null;
  created_at: string;
  revoked_at: string | null;
  /** `active` (usable now), `used_up`, `expired` or `revoked` (the first that applies, from the end). */
  status: 'active' | 'used_up' | 'expired' | 'revoked';
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const SUMMARY = `token_id::text AS token_id, role, uses_left, uses_total, expires_at, created_by, created_at, revoked_at,
  CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN expires_at <= now() THEN 'expired' WHEN uses_left = 0 THEN 'used_up' ELSE 'active' END AS status`;

interface Row extends Omit<EnrollmentTokenSummary, 'expires_at' | 'created_at' | 'revoked_at'> {
  expires_at: Date;
  created_at: Date;
  revoked_at: Date | null;
  total_count?: number;
}

const toSummary = ({ total_count: _, ...r }: Row): EnrollmentTokenSummary => ({
  ...r, expires_at: r.expires_at.toISOString(), created_at: r.created_at.toISOString(), revoked_at: r.revoked_at?.toISOString() ?? null,
});

export class EnrollmentTokenRepository {
  /** Newest first (until the retention job purges them: expired or used up). */
  async list(q: Queryable, limit: number, offset: number): Promise<{ tokens: EnrollmentTokenSummary[]; total: number }> {
    const { rows } = await q.query<Row>(
      `SELECT ${SUMMARY}, count(*) OVER ()::int AS total_count FROM enrollment_tokens ORDER BY created_at DESC, token_id DESC LIMIT $1 OFFSET $2`, [limit, offset]);
    const total = rows[0]?.total_count ?? (offset > 0 ? (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM enrollment_tokens')).rows[0]!.n : 0);
    return { tokens: rows.map(toSummary), total };
  }

  /**
   * Revokes the token (it registers no more agents; agents it registered keep working). Already
   * revoked: unchanged, returned as it is. Null when there is no such token (a non-UUID id included).
   */
  async revoke(q: Queryable, tokenId: string): Promise<EnrollmentTokenSummary | null> {
    if (!UUID_RE.test(tokenId)) return null;
    const { rows } = await q.query<Row>(
      `UPDATE enrollment_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE token_id = $1::uuid RETURNING ${SUMMARY}`, [tokenId.toLowerCase()]);
    return rows[0] ? toSummary(rows[0]) : null;
  }
}
