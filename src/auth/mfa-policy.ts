/**
 * Which users must enrol TOTP MFA, and by when (SPEC §4.1: `MCP_MFA_REQUIRED_ROLES`, and
 * `MCP_MFA_GRACE_PERIOD`).
 *
 * A user of a required role without MFA has a grace period that starts the first time they sign
 * in (login or refresh) while the requirement applies to them (`users.mfa_grace_started_at`; a
 * role change starts it afresh, and a user who never signs in never holds a token). Until it
 * ends they work normally and the login response names the deadline. After it, their tokens
 * reach only the routes marked `mfaEnrolment` (MFA setup and verify, GET /auth/me, logout):
 * every other route and every socket connection answers 401 `MFA_REQUIRED` until they enrol.
 * A grace period of 0 means "enrol before anything else": the first admin of a fresh install
 * still logs in and reaches setup, so nobody is locked out.
 */
import { AppError } from '../core/index.ts';
import type { Queryable } from '../store/index.ts';
import type { Role } from './rbac.ts';

export interface MfaPolicy {
  /** Roles that must enrol (config auth.mfa_required_roles). */
  requiredRoles: readonly Role[];
  /** Seconds from the grace period's start to enforcement (config auth.mfa_grace_period). */
  graceSeconds: number;
}

/** No role must enrol (MFA stays optional for everyone). */
export const NO_MFA_REQUIREMENT: MfaPolicy = { requiredRoles: [], graceSeconds: 0 };

/**
 * SQL for "this users row must enrol before anything else", with the policy's roles as `$roles`
 * (text[]) and grace seconds as `$grace` (substituted by the caller's parameter numbers).
 */
export function mfaOverdueSql(roles: string, grace: string): string {
  return `COALESCE(NOT mfa_enabled AND role = ANY(${roles}::text[]) AND mfa_grace_started_at <= now() - make_interval(secs => ${grace}), false)`;
}

/** SQL for when this users row's grace period ends (null: it need not enrol, or its grace has not started), parameters as in `mfaOverdueSql`. */
export function mfaDeadlineSql(roles: string, grace: string): string {
  return `CASE WHEN NOT mfa_enabled AND role = ANY(${roles}::text[]) THEN mfa_grace_started_at + make_interval(secs => ${grace}) END`;
}

/**
 * Starts the user's grace period if the policy applies to them and it has not started; returns
 * when it ends (null when the user need not enrol: role not required, or MFA already on).
 */
export async function startMfaGrace(q: Queryable, policy: MfaPolicy, user: { id: string; role: Role }): Promise<Date | null> {
  if (!policy.requiredRoles.includes(user.role)) return null; // no statement for roles the policy does not name
  const { rows } = await q.query<{ deadline: Date }>(
    `UPDATE users SET mfa_grace_started_at = COALESCE(mfa_grace_started_at, now())
     WHERE user_id = $1::uuid AND deleted_at IS NULL AND NOT mfa_enabled AND role = ANY($2::text[])
     RETURNING mfa_grace_started_at + make_interval(secs => $3) AS deadline`,
    [user.id, [...policy.requiredRoles], policy.graceSeconds],
  );
  return rows[0] ? new Date(rows[0].deadline) : null;
}

/** 401 MFA_REQUIRED for a user whose enrolment is overdue, on any route or socket but enrolment's. */
export function mfaEnrolmentRequired(): AppError {
  return new AppError('MFA_REQUIRED', 'Your role requires MFA and its grace period is over: enrol with POST /api/v1/auth/mfa/setup and POST /api/v1/auth/mfa/verify.', { details: { mfa_setup_required: true } });
}
