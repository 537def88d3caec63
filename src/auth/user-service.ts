/**
 * Users (people): login, CRUD for admins, first-admin bootstrap. Wrong password and unknown user
 * answer the same INVALID_CREDENTIALS with similar timing. Disabling a user or changing its role
 * revokes its refresh tokens and is seen by the auth hook on the next request.
 */
import { randomBytes } from 'node:crypto';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError, ConflictError, NotFoundError, isUuid, newId, type EventBus } from '../core/index.ts';
import { pgErrorCode, type Db, type Queryable } from '../store/index.ts';
import { assertPasswordPolicy, type PasswordHasher } from './passwords.ts';
import type { Principal, Role } from './rbac.ts';
import type { UserView as PublicUser } from '../contracts/views.ts';
import type { TokenPair, TokenService } from './token-service.ts';
import { NO_MFA_REQUIREMENT, startMfaGrace, type MfaPolicy } from './mfa-policy.ts';

export interface UserRow {
  user_id: string;
  username: string;
  password_hash: string;
  role: Role;
  disabled: boolean;
  mfa_enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

export type { UserView as PublicUser } from '../contracts/views.ts';

export function toPublicUser(u: UserRow): PublicUser {
  return { user_id: u.user_id, username: u.username, role: u.role, disabled: u.disabled, mfa_enabled: u.mfa_enabled, created_at: u.created_at.toISOString(), updated_at: u.updated_at.toISOString() };
}

/** `GET /users?sort=` values, each mapped to its fixed ORDER BY (never the caller's text). */
export const USER_SORTS = ['created_at:asc', 'created_at:desc', 'username:asc', 'username:desc'] as const;
export type UserSort = (typeof USER_SORTS)[number];
const USER_ORDER_BY: Record<UserSort, string> = {
  'created_at:asc': 'created_at, user_id',
  'created_at:desc': 'created_at DESC, user_id DESC',
  'username:asc': 'username, user_id',
  'username:desc': 'username DESC, user_id DESC',
};

/** Second-factor check, supplied by the MFA service; returns false when the code is wrong. */
export type MfaVerifier = (user: UserRow, code: string | undefined) => Promise<boolean>;

export interface LoginLimiters {
  /** consecutive failures per username+IP */
  userIp: RateLimiterAbstract;
  /** failures per IP per day */
  ip: RateLimiterAbstract;
}

const USER_COLUMNS = 'user_id, username, password_hash, role, disabled, mfa_enabled, created_at, updated_at';

export class UserService {
  mfaVerifier: MfaVerifier = async (u) => !u.mfa_enabled;

  constructor(
    private readonly db: Db,
    private readonly hasher: PasswordHasher,
    private readonly tokens: TokenService,
    private readonly bus: EventBus,
    private readonly limiters: LoginLimiters,
    private readonly mfaPolicy: MfaPolicy = NO_MFA_REQUIREMENT,
  ) {}

  async findByUsername(username: string): Promise<UserRow | null> {
    const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE lower(username) = lower($1) AND deleted_at IS NULL`, [username]);
    return rows[0] ?? null;
  }

  async get(userId: string): Promise<UserRow> {
    if (!isUuid(userId)) throw new NotFoundError('NOT_FOUND', 'User not found.');
    const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE user_id = $1::uuid AND deleted_at IS NULL`, [userId]);
    if (!rows[0]) throw new NotFoundError('NOT_FOUND', 'User not found.');
    return rows[0];
  }

  /** A page of users in `sort` order (GET /users); ties by user_id, in the same direction. */
  async list(limit: number, offset: number, sort: UserSort = 'created_at:asc'): Promise<{ users: UserRow[]; total: number }> {
    const { rows } = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY ${USER_ORDER_BY[sort]} LIMIT $1 OFFSET $2`, [limit, offset]);
    const total = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE deleted_at IS NULL');
    return { users: rows, total: total.rows[0]?.n ?? 0 };
  }

  async create(input: { username: string; password: string; role: Role }): Promise<UserRow> {
    assertPasswordPolicy(input.password);
    const hash = await this.hasher.hash(input.password);
    try {
      const { rows } = await this.db.query<UserRow>(
        `INSERT INTO users (user_id, username, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING ${USER_COLUMNS}`,
        [newId(), input.username, hash, input.role],
      );
      return rows[0]!;
    } catch (err) {
      if (pgErrorCode(err) === '23505') throw new ConflictError('CONFLICT', 'A user with this username exists.');
      throw err;
    }
  }

  async update(userId: string, patch: { role?: Role; disabled?: boolean; password?: string }): Promise<UserRow> {
    if (patch.role === undefined && patch.disabled === undefined && patch.password === undefined) throw new AppError('EMPTY_UPDATE');
    const before = await this.get(userId);
    if (patch.password !== undefined) assertPasswordPolicy(patch.password);
    const hash = patch.password !== undefined ? await this.hasher.hash(patch.password) : null;
    // A new role starts any MFA grace period afresh (MfaPolicy): the old one was for another role.
    const { rows } = await this.db.transaction(async (q) => {
      if ((patch.role !== undefined && patch.role !== 'admin') || patch.disabled === true) await this.assertNotLastAdmin(q, before.user_id);
      return q.query<UserRow>(
        `UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), password_hash = COALESCE($4, password_hash), updated_at = now(),
           mfa_grace_started_at = CASE WHEN $2::text IS NOT NULL AND $2::text <> role THEN NULL ELSE mfa_grace_started_at END
         WHERE user_id = $1 AND deleted_at IS NULL RETURNING ${USER_COLUMNS}`,
        [before.user_id, patch.role ?? null, patch.disabled ?? null, hash],
      );
    });
    const after = rows[0]!;
    const lowered = patch.role !== undefined && patch.role !== before.role;
    if (after.disabled || lowered || hash) await this.revoke(after.user_id, after.disabled ? 'disabled' : lowered ? 'role_changed' : 'password_changed');
    return after;
  }

  async remove(userId: string): Promise<void> {
    const u = await this.get(userId);
    await this.db.transaction(async (q) => {
      await this.assertNotLastAdmin(q, u.user_id);
      await q.query('UPDATE users SET deleted_at = now(), updated_at = now() WHERE user_id = $1', [u.user_id]);
    });
    await this.revoke(u.user_id, 'deleted');
  }

  /**
   * Refuses (409) to demote, disable or delete the last enabled admin: nothing could bring one
   * back (the first-start admin is only created in an empty users table, and user management
   * needs an admin). The enabled admins are locked, so two admins demoting each other at once
   * cannot both succeed.
   */
  private async assertNotLastAdmin(q: Queryable, userId: string): Promise<void> {
    const { rows } = await q.query<{ user_id: string }>(
      `SELECT user_id FROM users WHERE role = 'admin' AND NOT disabled AND deleted_at IS NULL ORDER BY user_id FOR UPDATE`);
    if (rows.length === 1 && rows[0]!.user_id === userId) {
      throw new ConflictError('CONFLICT', 'This is the last enabled admin: make another user admin before demoting, disabling or deleting it.');
    }
  }

  private async revoke(userId: string, reason: string): Promise<void> {
    await this.tokens.revokeSubject('user', userId);
    this.bus.emit('principal:revoked', { subject_type: 'user', subject_id: userId, reason });
  }

  /**
   * Login with throttling: per username+IP consecutive failures and per IP daily failures.
   * `mfaSetupDeadline`: when the user's role must enrol MFA and they have not, the end of their
   * grace period (started by this login if it had not; see MfaPolicy), else null.
   */
  async login(input: { username: string; password: string; totp_code?: string }, ip: string): Promise<{ pair: TokenPair; user: UserRow; mfaSetupDeadline: Date | null }> {
    const userIpKey = `${input.username.toLowerCase()}|${ip}`;
    const [uip, ipRes] = await Promise.all([this.limiters.userIp.get(userIpKey), this.limiters.ip.get(ip)]);
    const blocked = [uip, ipRes].find((r) => r !== null && r.remainingPoints <= 0);
    if (blocked) throw new AppError('RATE_LIMIT_EXCEEDED', 'Too many failed logins; try again later.', { retryAfter: Math.ceil(blocked.msBeforeNext / 1000) });
    const user = await this.findByUsername(input.username);
    const ok = await this.hasher.verify(user?.password_hash ?? null, input.password);
    if (!user || !ok || user.disabled) {
      await Promise.all([this.limiters.userIp.penalty(userIpKey, 1), this.limiters.ip.penalty(ip, 1)]);
      throw new AppError('INVALID_CREDENTIALS');
    }
    if (user.mfa_enabled && !(await this.mfaVerifier(user, input.totp_code))) throw new AppError('MFA_REQUIRED');
    await this.limiters.userIp.delete(userIpKey);
    const mfaSetupDeadline = user.mfa_enabled ? null : await this.startMfaGrace({ id: user.user_id, role: user.role });
    const pair = await this.tokens.issuePair(this.principalOf(user));
    return { pair, user, mfaSetupDeadline };
  }

  /** Starts the user's MFA grace period when their role must enrol (login, refresh); returns its end or null. */
  startMfaGrace(user: { id: string; role: Role }): Promise<Date | null> {
    return startMfaGrace(this.db, this.mfaPolicy, user);
  }

  principalOf(u: Pick<UserRow, 'user_id' | 'role' | 'username'>): Principal {
    return { type: 'user', id: u.user_id, role: u.role, name: u.username };
  }

  /**
   * Creates `admin` when there is no user. Returns the generated password (to print once) or
   * null when MCP_ADMIN_PASSWORD was used or users exist.
   */
  async bootstrapAdmin(configured: string): Promise<{ created: boolean; generated: string | null }> {
    const { rows } = await this.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users');
    if ((rows[0]?.n ?? 0) > 0) return { created: false, generated: null };
    const password = configured || randomBytes(18).toString('base64url');
    await this.create({ username: 'admin', password, role: 'admin' });
    return { created: true, generated: configured ? null : password };
  }
}
