/**
 * MfaService: TOTP second factor for users (SPEC §4.1).
 *
 * - `setup(userId)` makes a fresh secret and 10 recovery codes; the secret is stored encrypted
 *   (FieldCipher, bound to users.mfa_pending_secret of that row), the codes only as SHA-256.
 *   Allowed while MFA is off (re-running it replaces the pending secret and codes).
 * - `verify(userId, code)` checks a code against the pending secret and turns MFA on, moving
 *   the secret to users.mfa_secret (re-encrypted for that column).
 * - `verifier` is UserService's `mfaVerifier`: at login, a user with MFA on must give a TOTP
 *   code or one recovery code. A TOTP step is accepted at most once: the accepted step is
 *   stored with `UPDATE … WHERE mfa_last_step < $step`, so a replay (even two concurrent logins
 *   with the same code) succeeds only once. A recovery code is removed by the same atomic
 *   update that accepts it.
 *
 * Which roles must enrol, and by when, is the MfaPolicy (auth/mfa-policy.ts): enforced by the
 * principal's live state, not here. Once enrolled, MFA cannot be turned off through the API.
 */
import { AppError, ConflictError, NotFoundError, systemClock, type Clock } from '../core/index.ts';
import type { Db } from '../store/index.ts';
import type { FieldCipher } from './field-cipher.ts';
import { generateRecoveryCodes, generateSecret, hashRecoveryCode, matchRecoveryCode, otpauthUrl, verifyTotp } from './totp.ts';

export interface MfaServiceOptions {
  /** Issuer shown by authenticator apps. */
  issuer?: string;
  recoveryCodes?: number;
  clock?: Clock;
}

export interface MfaSetup {
  secret: string;
  otpauth_url: string;
  recovery_codes: string[];
}

/** The user fields the login check needs (UserService's UserRow satisfies it). */
export interface MfaUser {
  user_id: string;
  mfa_enabled: boolean;
}

export type MfaMethod = 'totp' | 'recovery_code';

interface MfaRow {
  user_id: string;
  username: string;
  mfa_enabled: boolean;
  mfa_secret: string | null;
  mfa_pending_secret: string | null;
  mfa_last_step: number | string | null;
  recovery_codes: string[];
}

export class MfaService {
  private readonly clock: Clock;
  private readonly issuer: string;
  private readonly codes: number;
  /** Called after each successful second-factor check at login (audit which method was used). */
  onVerified: ((userId: string, method: MfaMethod) => void) | undefined;

  constructor(private readonly db: Db, private readonly cipher: FieldCipher, opts: MfaServiceOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.issuer = opts.issuer ?? 'MCP Server';
    this.codes = opts.recoveryCodes ?? 10;
  }

  private async row(userId: string): Promise<MfaRow> {
    const { rows } = await this.db.query<MfaRow>(
      `SELECT user_id::text AS user_id, username, mfa_enabled, mfa_secret, mfa_pending_secret, mfa_last_step, recovery_codes
       FROM users WHERE user_id::text = $1 AND deleted_at IS NULL AND NOT disabled`, [userId]);
    if (!rows[0]) throw new NotFoundError('NOT_FOUND', 'User not found.');
    return rows[0];
  }

  async setup(userId: string): Promise<MfaSetup> {
    const u = await this.row(userId);
    if (u.mfa_enabled) throw new ConflictError('CONFLICT', 'MFA is already enabled for this user.');
    const secret = generateSecret();
    const recovery = generateRecoveryCodes(this.codes);
    const sealed = this.cipher.encrypt(secret, { table: 'users', column: 'mfa_pending_secret', rowId: u.user_id });
    const { rowCount } = await this.db.query(
      `UPDATE users SET mfa_pending_secret = $2, recovery_codes = $3::jsonb, updated_at = now() WHERE user_id::text = $1 AND NOT mfa_enabled`,
      [u.user_id, sealed, JSON.stringify(recovery.map(hashRecoveryCode))],
    );
    if (rowCount !== 1) throw new ConflictError('CONFLICT', 'MFA is already enabled for this user.');
    return { secret, otpauth_url: otpauthUrl(u.username, secret, this.issuer), recovery_codes: recovery };
  }

  /** Confirms setup with a code from the app; turns MFA on. 400 INVALID_PARAMETERS on a wrong code. */
  async verify(userId: string, code: string): Promise<{ mfa_enabled: true }> {
    const u = await this.row(userId);
    if (u.mfa_enabled) throw new ConflictError('CONFLICT', 'MFA is already enabled for this user.');
    if (!u.mfa_pending_secret) throw new ConflictError('CONFLICT', 'Call MFA setup first.');
    const secret = this.cipher.decrypt<string>(u.mfa_pending_secret, { table: 'users', column: 'mfa_pending_secret', rowId: u.user_id });
    const last = u.mfa_last_step === null ? null : Number(u.mfa_last_step);
    const check = verifyTotp(secret, code, last, this.clock.now());
    if (!check.ok) throw new AppError('INVALID_PARAMETERS', 'The code is not valid.', { details: { field_errors: [{ field: 'code', message: 'is not a valid current code' }] } });
    const sealed = this.cipher.encrypt(secret, { table: 'users', column: 'mfa_secret', rowId: u.user_id });
    const { rowCount } = await this.db.query(
      `UPDATE users SET mfa_enabled = true, mfa_secret = $2, mfa_pending_secret = NULL, mfa_last_step = $3, updated_at = now()
       WHERE user_id::text = $1 AND NOT mfa_enabled AND mfa_pending_secret = $4 AND (mfa_last_step IS NULL OR mfa_last_step < $3)`,
      [u.user_id, sealed, check.step, u.mfa_pending_secret],
    );
    if (rowCount !== 1) throw new ConflictError('CONFLICT', 'MFA setup changed concurrently; try again.');
    return { mfa_enabled: true };
  }

  /** UserService.mfaVerifier: true when MFA is off, or the code is a fresh TOTP code or an unused recovery code. */
  readonly verifier = async (user: MfaUser, code: string | undefined): Promise<boolean> => {
    if (!user.mfa_enabled) return true;
    if (typeof code !== 'string' || code.trim() === '') return false;
    const u = await this.row(user.user_id);
    if (!u.mfa_enabled || !u.mfa_secret) return false;
    const compact = code.replace(/\s+/g, '');
    if (/^[0-9]{6}$/.test(compact)) {
      const secret = this.cipher.decrypt<string>(u.mfa_secret, { table: 'users', column: 'mfa_secret', rowId: u.user_id });
      const last = u.mfa_last_step === null ? null : Number(u.mfa_last_step);
      const check = verifyTotp(secret, compact, last, this.clock.now());
      if (!check.ok) return false;
      const { rowCount } = await this.db.query(
        'UPDATE users SET mfa_last_step = $2 WHERE user_id::text = $1 AND (mfa_last_step IS NULL OR mfa_last_step < $2)',
        [u.user_id, check.step],
      );
      if (rowCount !== 1) return false;
      this.onVerified?.(u.user_id, 'totp');
      return true;
    }
    const hash = matchRecoveryCode(code, u.recovery_codes ?? []);
    if (!hash) return false;
    const { rowCount } = await this.db.query(
      `UPDATE users SET recovery_codes = recovery_codes - $2::text, updated_at = now() WHERE user_id::text = $1 AND recovery_codes @> jsonb_build_array($2::text)`,
      [u.user_id, hash],
    );
    if (rowCount !== 1) return false;
    this.onVerified?.(u.user_id, 'recovery_code');
    return true;
  };

  /** Recovery codes left (for the user's own status view). */
  async recoveryCodesLeft(userId: string): Promise<number> {
    return (await this.row(userId)).recovery_codes.length;
  }
}
