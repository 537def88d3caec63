/**
 * Authentication and authorization for routes. `authenticate` verifies the bearer token and
 * re-reads the principal's live state (disabled users and deleted agents stop at once; a
 * lowered role applies now); a user past their MFA enrolment deadline reaches only the routes marked
 * `mfaEnrolment`. `requirePermission` answers 403 INSUFFICIENT_PERMISSIONS.
 */
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { AppError, ForbiddenError, type EventBus } from '../core/index.ts';
import { hasPermission, mfaEnrolmentRequired, type Permission, type PrincipalState, type TokenService, type Principal } from '../auth/index.ts';

export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

export interface AuthDeps {
  tokens: TokenService;
  principals: PrincipalState;
  bus: EventBus;
  /** Called on every authentication/authorization failure (audit, breach detection). */
  onAuthFailure?: (request: FastifyRequest, code: string, principal: Principal | null) => void;
}

export function makeAuthenticate(deps: AuthDeps): preHandlerAsyncHookHandler {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply) {
    const token = bearerToken(request.headers.authorization);
    if (!token) {
      deps.onAuthFailure?.(request, 'MISSING_AUTHENTICATION', null);
      throw new AppError('MISSING_AUTHENTICATION');
    }
    let verified;
    try {
      verified = await deps.tokens.verify(token, 'access');
    } catch (err) {
      deps.onAuthFailure?.(request, err instanceof AppError ? err.code : 'INVALID_TOKEN', null);
      throw err;
    }
    // Null for a disabled/deleted principal; a deleted agent's token also raises the
    // revoked_agent_credentials alert there (PrincipalState), the request is refused the same.
    const live = await deps.principals.current(verified.principal);
    if (!live) {
      deps.onAuthFailure?.(request, 'INVALID_TOKEN', verified.principal);
      throw new AppError('INVALID_TOKEN', 'The principal is disabled or deleted.');
    }
    if (live.mfaOverdue && !request.routeOptions.config.mfaEnrolment) {
      deps.onAuthFailure?.(request, 'MFA_REQUIRED', live);
      throw mfaEnrolmentRequired();
    }
    request.principal = live;
    request.token = verified;
  };
}

export function makeRequirePermission(deps: Pick<AuthDeps, 'onAuthFailure'>) {
  return (...permissions: Permission[]): preHandlerAsyncHookHandler =>
    async function requirePermission(request: FastifyRequest) {
      const p = request.principal;
      if (!p) throw new AppError('MISSING_AUTHENTICATION');
      const missing = permissions.filter((perm) => !hasPermission(p.role, perm));
      if (missing.length) {
        deps.onAuthFailure?.(request, 'INSUFFICIENT_PERMISSIONS', p);
        throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', undefined, { required: missing });
      }
    };
}
