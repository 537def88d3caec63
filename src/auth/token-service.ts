/**
 * Issues and verifies JWTs (SPEC §4.3) and rotates refresh tokens with reuse detection:
 * each refresh token is single use; presenting a used one revokes its whole family.
 * Verification pins EdDSA, requires a known `kid`, checks iss/aud/typ/exp/nbf and revocation.
 */
import { SignJWT, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { AppError, newId, type EventBus } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import { JWT_ALG, type SigningKeys } from './signing-keys.ts';
import { ROLES, type Principal, type Role } from './rbac.ts';
import type { RevocationList } from './revocation-list.ts';

export interface TokenLifetimes {
  user_access_ttl: number;
  user_refresh_ttl: number;
  agent_access_ttl: number;
  agent_refresh_ttl: number;
}

export interface TokenServiceOptions {
  issuer: string;
  audience: string;
  lifetimes: TokenLifetimes;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

export interface VerifiedToken {
  principal: Principal;
  typ: 'access' | 'refresh';
  jti: string;
  exp: number;
  family?: string;
}

/** Verified access tokens kept (see `TokenService.verify`). */
const VERIFIED_CACHE_MAX = 10_000;

export class TokenService {
  constructor(
    private readonly db: Db,
    private readonly keys: SigningKeys,
    private readonly opts: TokenServiceOptions,
    private readonly revocations: RevocationList,
    private readonly bus: EventBus,
  ) {}

  private ttl(p: Principal, typ: 'access' | 'refresh'): number {
    const l = this.opts.lifetimes;
    if (p.type === 'agent') return typ === 'access' ? l.agent_access_ttl : l.agent_refresh_ttl;
    return typ === 'access' ? l.user_access_ttl : l.user_refresh_ttl;
  }

  private async sign(p: Principal, typ: 'access' | 'refresh', jti: string, extra: Record<string, unknown> = {}): Promise<string> {
    const key = this.keys.current;
    const claims: JWTPayload = { typ, role: p.role, name: p.name, ...extra };
    if (p.type === 'agent') claims.agent_id = p.id;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: JWT_ALG, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.audience)
      .setSubject(`${p.type}:${p.id}`)
      .setJti(jti)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime(`${this.ttl(p, typ)}s`)
      .sign(key.privateKey!);
  }

  /**
   * An access token. `family` (private claim `fam`) names the refresh family issued with it, so a
   * logout presenting only this token can revoke that family too (SPEC §4.1).
   */
  async issueAccess(p: Principal, family?: string): Promise<{ token: string; expires_in: number }> {
    return { token: await this.sign(p, 'access', newId(), family ? { fam: family } : {}), expires_in: this.ttl(p, 'access') };
  }

  /** A new access/refresh pair; `family` continues a rotation chain. */
  async issuePair(p: Principal, family?: string, q: Queryable = this.db): Promise<TokenPair> {
    const fam = family ?? newId();
    const refreshJti = newId();
    const refreshTtl = this.ttl(p, 'refresh');
    await q.query(
      `INSERT INTO refresh_tokens (jti, family_id, subject_type, subject_id, expires_at) VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))`,
      [refreshJti, fam, p.type, p.id, refreshTtl],
    );
    const access = await this.issueAccess(p, fam);
    return {
      access_token: access.token,
      refresh_token: await this.sign(p, 'refresh', refreshJti, { fam }),
      token_type: 'Bearer',
      expires_in: access.expires_in,
    };
  }

  /** Verifies signature and claims; maps every failure to INVALID_TOKEN or TOKEN_EXPIRED. */
  /**
   * Access tokens whose signature and claims verified, by token string, so a token presented on
   * every request is verified once (EdDSA verification was the largest single cost of a REST
   * call). A hit is re-checked for expiry and for its signing key still being in the ring;
   * revocation is checked on every use below. Bounded; oldest entries go first.
   */
  private readonly verified = new Map<string, { payload: JWTPayload; kid: string }>();

  async verify(token: string, expectedTyp: 'access' | 'refresh'): Promise<VerifiedToken> {
    let payload: JWTPayload;
    const hit = this.verified.get(token);
    if (hit && this.keys.get(hit.kid)) {
      if ((hit.payload.exp ?? 0) <= Math.floor(Date.now() / 1000)) {
        this.verified.delete(token);
        throw new AppError('TOKEN_EXPIRED');
      }
      payload = hit.payload;
    } else {
      payload = await this.verifySignature(token);
    }
    if (payload.typ !== expectedTyp) throw new AppError('INVALID_TOKEN', `Expected a${expectedTyp === 'access' ? 'n access' : ' refresh'} token.`);
    const sub = String(payload.sub);
    const sep = sub.indexOf(':');
    const type = sub.slice(0, sep);
    const id = sub.slice(sep + 1);
    const role = payload.role as Role;
    if ((type !== 'user' && type !== 'agent') || !id || !ROLES.includes(role)) throw new AppError('INVALID_TOKEN');
    const jti = String(payload.jti);
    const family = typeof payload.fam === 'string' ? payload.fam : undefined;
    if (expectedTyp === 'access' && (this.revocations.isRevoked(jti) || (family !== undefined && this.revocations.isRevoked(family)))) {
      throw new AppError('INVALID_TOKEN', 'The token was revoked.');
    }
    return {
      principal: { type, id, role, name: typeof payload.name === 'string' ? payload.name : id, jti, exp: payload.exp },
      typ: expectedTyp,
      jti,
      exp: payload.exp!,
      family,
    };
  }

  private async verifySignature(token: string): Promise<JWTPayload> {
    let payload: JWTPayload;
    let kid: string;
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== JWT_ALG || typeof header.kid !== 'string') throw new AppError('INVALID_TOKEN');
      kid = header.kid;
      const key = this.keys.get(kid);
      if (!key) throw new AppError('INVALID_TOKEN');
      ({ payload } = await jwtVerify(token, key.publicKey, {
        algorithms: [JWT_ALG],
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        requiredClaims: ['sub', 'jti', 'iat', 'exp', 'typ', 'role'],
      }));
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AppError('TOKEN_EXPIRED');
      throw new AppError('INVALID_TOKEN');
    }
    if (payload.typ === 'access') {
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { payload, kid });
    }
    return payload;
  }

  /**
   * Exchanges a refresh token for a new pair. `current` re-reads the principal's live role and
   * state (a disabled user or deleted agent cannot refresh); it is also asked for a revoked token,
   * as it reports a deleted agent's credentials being used (PrincipalState).
   */
  async refresh(refreshToken: string, current: (p: Principal) => Promise<Principal | null>): Promise<TokenPair> {
    const v = await this.verify(refreshToken, 'refresh');
    const claimed = await this.db.query<{ family_id: string }>(
      `UPDATE refresh_tokens SET used_at = now() WHERE jti = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() RETURNING family_id`,
      [v.jti],
    );
    const row = claimed.rows[0];
    if (!row) {
      const { rows } = await this.db.query<{ family_id: string; used_at: Date | null; revoked_at: Date | null }>(
        'SELECT family_id, used_at, revoked_at FROM refresh_tokens WHERE jti = $1', [v.jti]);
      const known = rows[0];
      // Reuse (SPEC §4.1) is presenting a token that was already *used* (rotated): it may have been
      // stolen, so the family is revoked and an alert raised. A token that was only *revoked*
      // (logout, revokeSubject, or the rest of a family revoked on reuse) is just invalid: no alert.
      if (known?.used_at) {
        await this.revokeFamily(known.family_id);
        this.bus.emit('system:security_alert', { alert_id: newId(), rule: 'refresh_token_reuse', severity: 'high', message: `Refresh token reuse by ${v.principal.type} ${v.principal.name}; family revoked.` });
        throw new AppError('TOKEN_REUSED');
      }
      if (known?.revoked_at) {
        // Revoked with its principal (agent deleted, user disabled) or by logout: still ask
        // `current`, which raises the alert when a deleted agent's token is presented (SPEC §9).
        await current(v.principal);
        throw new AppError('INVALID_TOKEN', 'The token was revoked.');
      }
      throw new AppError('INVALID_TOKEN');
    }
    const live = await current(v.principal);
    if (!live) {
      await this.revokeFamily(row.family_id);
      throw new AppError('INVALID_TOKEN', 'The principal is disabled or deleted.');
    }
    return this.issuePair(live, row.family_id);
  }

  /**
   * Ends a session: its refresh tokens, and the access tokens issued with them (their `fam`
   * claim names the family; the family id goes on the revocation list until the longest access
   * token issued now would have expired). Reuse of a refresh token means it was stolen: the
   * thief's access token stops working at once, not when it expires.
   */
  async revokeFamily(familyId: string): Promise<void> {
    await this.db.query('UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL', [familyId]);
    const l = this.opts.lifetimes;
    await this.revocations.revoke(familyId, Math.floor(Date.now() / 1000) + Math.max(l.user_access_ttl, l.agent_access_ttl));
  }

  async revokeSubject(type: 'user' | 'agent', id: string): Promise<void> {
    await this.db.query('UPDATE refresh_tokens SET revoked_at = now() WHERE subject_type = $1 AND subject_id = $2 AND revoked_at IS NULL', [type, id]);
  }

  /**
   * Logout (SPEC §4.1): revokes the access token's jti and its session's refresh family (the
   * `fam` claim, set on tokens issued with a pair). A refresh token in the body also has its own
   * family revoked (when it is the same principal's). Access tokens without `fam` (issued before
   * the claim existed) revoke only what the body names.
   */
  async logout(access: VerifiedToken, refreshToken?: string): Promise<void> {
    await this.revocations.revoke(access.jti, access.exp);
    const families = new Set<string>();
    if (access.family) families.add(access.family);
    if (refreshToken) {
      const v = await this.verify(refreshToken, 'refresh').catch(() => null);
      if (v && v.principal.id === access.principal.id && v.family) families.add(v.family);
    }
    for (const family of families) await this.revokeFamily(family);
  }
}
