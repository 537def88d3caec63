/**
 * Security routes and hooks (SPEC §4.1, §4.2, §9):
 *
 * - GET  /audit, GET /audit/verify                 (`audit:read`)
 * - GET  /security/alerts, POST /security/alerts/{alert_id}/ack (`security:alerts`)
 * - POST /auth/mfa/setup, POST /auth/mfa/verify   (any signed-in user)
 * - POST /agents/enrollment-tokens                 (`agent:register`)
 * - `enrollmentAware(kit, guard)`: the guard POST /agents/register uses so that an
 *   enrollment token (`Bearer mcp_et_…`) is accepted in place of a JWT with `agent:register`.
 *
 * Hooks on every /api/v1 route (installed in the API context by this plugin):
 * - preHandler: a username locked by the breach detector cannot log in (429 + Retry-After);
 * - onSend: audits authentication events (login success/failure, MFA challenge failures, refresh,
 *   refresh-token reuse, logout, agent token exchange) and every 401/403 anywhere (authentication
 *   and authorization failures), and feeds the breach detector (failed logins, authorization
 *   failure bursts). The audit write is awaited: when it fails the response becomes a 500 — an
 *   event that cannot be audited does not succeed.
 */
import Type from 'typebox';
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { App } from '../app-types.ts';
import type { GuardHooks, RouteKit } from '../http-deps.ts';
import { bearerToken } from '../auth-hooks.ts';
import { auditContextOf } from '../audit-context.ts';
import { AppError, ForbiddenError, RateLimitedError } from '../../core/index.ts';
import { EmptyBody, IdParams, ListQuery, paginate } from '../../contracts/common.ts';
import { RoleSchema } from '../../contracts/agents.ts';
import { assertMayGrantRole, principalKey, type Principal } from '../../auth/index.ts';
import {
  isEnrollmentToken,
  ALERT_SORTS,
  ENROLLMENT_MAX_TTL_SECONDS,
  ENROLLMENT_MAX_USES,
  type AuditEntryInput,
  type AuditLog,
  type BreachDetector,
  type EnrollmentGrant,
  type EnrollmentTokens,
  type MfaService,
  type SecurityAlerts,
} from '../../security/index.ts';

export interface SecurityRouteDeps {
  audit: AuditLog;
  alerts: SecurityAlerts;
  detector: BreachDetector;
  mfa: MfaService;
  enrollment: EnrollmentTokens;
  /** Failures of background side effects (breach counting) — logged, never fatal. */
  onError?: (err: unknown, what: string) => void;
}

const AUDIT_ACTION_RE = '^[a-z_:.-]{1,64}$';
const AuditQuery = Type.Object({
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  actor_type: Type.Optional(Type.Union(['user', 'agent', 'system', 'anonymous'].map((x) => Type.Literal(x)))),
  action: Type.Optional(Type.String({ pattern: AUDIT_ACTION_RE })),
  resource_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  resource_id: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  outcome: Type.Optional(Type.Union(['success', 'failure', 'denied'].map((x) => Type.Literal(x)))),
  from: Type.Optional(Type.String({ format: 'date-time' })),
  to: Type.Optional(Type.String({ format: 'date-time' })),
  ...ListQuery,
  sort: Type.Optional(Type.Union(['timestamp:asc', 'timestamp:desc'].map((x) => Type.Literal(x)))),
}, { additionalProperties: false });

const Severity = Type.Union(['low', 'medium', 'high', 'critical'].map((x) => Type.Literal(x)));
const AlertsQuery = Type.Object({
  rule: Type.Optional(Type.String({ pattern: AUDIT_ACTION_RE })),
  severity: Type.Optional(Severity),
  acknowledged: Type.Optional(Type.Boolean()),
  ...ListQuery,
  /** Default `created_at:desc` (newest first). */
  sort: Type.Optional(Type.Union(ALERT_SORTS.map((x) => Type.Literal(x)))),
}, { additionalProperties: false });

const MfaVerifyBody = Type.Object({ code: Type.String({ minLength: 6, maxLength: 16 }) }, { additionalProperties: false });
const EnrollmentBody = Type.Object({
  uses: Type.Integer({ minimum: 1, maximum: ENROLLMENT_MAX_USES }),
  ttl_seconds: Type.Integer({ minimum: 1, maximum: ENROLLMENT_MAX_TTL_SECONDS }),
  role: Type.Optional(RoleSchema),
}, { additionalProperties: false });

const API = '/api/v1';
const depsByServices = new WeakMap<object, SecurityRouteDeps>();
const grants = new WeakMap<FastifyRequest, { grant: EnrollmentGrant; enrollment: EnrollmentTokens }>();
const stashedFailures = new WeakMap<FastifyRequest, Principal | null>();
const handled = new WeakSet<FastifyRequest>();

/**
 * For createApp's `onAuthFailure`: remembers the principal of a token that verified but whose
 * principal is disabled/deleted, so the denial is audited under it.
 */
export function noteAuthFailure(request: FastifyRequest, _code: string, principal: Principal | null): void {
  if (principal) stashedFailures.set(request, principal);
}

/** Claims of a JWT this server just issued (the response of login/refresh/token), unverified. */
function claimsOf(jwt: unknown): { sub?: string; role?: string; name?: string } | null {
  if (typeof jwt !== 'string') return null;
  const part = jwt.split('.')[1];
  if (!part) return null;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { sub?: string; role?: string; name?: string };
  } catch {
    return null;
  }
}

function principalFromClaims(c: { sub?: string; role?: string; name?: string } | null): Principal | null {
  if (!c?.sub) return null;
  const i = c.sub.indexOf(':');
  const type = c.sub.slice(0, i);
  if (type !== 'user' && type !== 'agent') return null;
  return { type, id: c.sub.slice(i + 1), role: (c.role ?? 'worker') as Principal['role'], name: c.name ?? c.sub.slice(i + 1) };
}

function parseJson(payload: unknown): Record<string, unknown> | null {
  if (typeof payload !== 'string' || !payload.startsWith('{')) return null;
  try {
    return JSON.parse(payload) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * The guard of POST /agents/register: an enrollment token stands in for `agent:register` (the
 * agent gets the token's role); anything else goes through `guard`.
 *
 * Order: as the request arrives (before its body is read), the token is looked up (invalid,
 * expired, revoked → 401) and becomes the principal; before the body is validated, the rate
 * limit runs; after it, the Idempotency-Key, and only then is a use taken (atomically, audited). So a replay returns the original 201 even after that
 * registration took the last use, and a 400, a 429, a 409/422 on the key or a replay takes no use.
 */
export function enrollmentAware(kit: RouteKit, guard: GuardHooks): GuardHooks {
  const viaToken = new WeakSet<FastifyRequest>();
  async function run(self: unknown, hooks: preHandlerAsyncHookHandler[], request: FastifyRequest, reply: FastifyReply): Promise<void> {
    for (const h of hooks) {
      await h.call(self as never, request, reply);
      if (reply.sent) return;
    }
  }
  return {
    onRequest: [async function enrollmentOrGuard(this: unknown, request: FastifyRequest, reply: FastifyReply) {
      const token = bearerToken(request.headers.authorization);
      const deps = depsByServices.get(kit.services);
      if (!deps || !isEnrollmentToken(token)) return run(this, guard.onRequest, request, reply);
      const known = await deps.enrollment.find(token);
      if (!known) throw new AppError('INVALID_TOKEN', 'The enrollment token is invalid, expired or used up.');
      request.principal = { type: 'agent', id: `enrollment-${known.token_id}`, role: known.role, name: `enrollment:${known.token_id}` };
      viaToken.add(request);
    }],
    preValidation: [async function enrollmentRateLimit(this: unknown, request: FastifyRequest, reply: FastifyReply) {
      if (!viaToken.has(request)) return run(this, guard.preValidation, request, reply);
      await kit.rateLimits.consume(request, reply, 'register');
    }],
    preHandler: [async function enrollmentUse(this: unknown, request: FastifyRequest, reply: FastifyReply) {
      const deps = depsByServices.get(kit.services);
      if (!deps || !viaToken.has(request)) return run(this, guard.preHandler, request, reply);
      const token = bearerToken(request.headers.authorization)!;
      const body = request.body as { role?: string } | undefined;
      if (request.routeOptions.config.idempotent && await kit.idempotency.begin(request, reply)) return;
      // A refusal from here on is answered as before the reordering: anonymous (audit, breach
      // detection by IP) and not stored under the Idempotency-Key (finish with a 5xx releases it).
      const refuse = async (err: unknown): Promise<never> => {
        request.principal = null;
        await kit.idempotency.finish(request, 500, null);
        throw err;
      };
      const grant = await kit.services.db.transaction(async (tx) => {
        const g = await deps.enrollment.consume(token, tx);
        await deps.audit.audit(tx, auditContextOf(request, null), { action: 'enrollment_token_use', resource_type: 'enrollment_token', resource_id: g.token_id, outcome: 'success', risk_level: 'medium' });
        return g;
      }).catch(refuse);
      if (body?.role !== undefined && body.role !== grant.role) {
        await deps.enrollment.refund(grant);
        await refuse(new ForbiddenError('INSUFFICIENT_PERMISSIONS', 'The enrollment token does not grant this role.', { token_role: grant.role }));
      }
      grants.set(request, { grant, enrollment: deps.enrollment });
    }],
  };
}

/**
 * The enrollment grant of a register request authorised by an enrollment token, if any: the role
 * the agent must get, and `refund` to give the use back when the registration fails.
 */
export function enrollmentGrantOf(request: FastifyRequest): { role: EnrollmentGrant['role']; refund: () => Promise<void> } | null {
  const held = grants.get(request);
  if (!held) return null;
  return {
    role: held.grant.role,
    refund: async () => {
      if (grants.delete(request)) await held.enrollment.refund(held.grant);
    },
  };
}

export function securityRoutes(deps: SecurityRouteDeps) {
  return function securityPlugin(app: App, kit: RouteKit): void {
    depsByServices.set(kit.services, deps);
    const { audit, alerts, detector, mfa, enrollment } = deps;
    const db = kit.services.db;
    const soft = (p: Promise<unknown>, what: string) => p.catch((err: unknown) => deps.onError?.(err, what));

    // ---- hooks for the whole API ------------------------------------------------------------
    app.addHook('preHandler', async (request) => {
      if (request.routeOptions.url !== `${API}/auth/login` || request.method !== 'POST') return;
      const username = (request.body as { username?: unknown } | undefined)?.username;
      if (typeof username !== 'string') return;
      const ms = await detector.loginLockedFor(username);
      if (ms > 0) throw new RateLimitedError(Math.ceil(ms / 1000));
    });

    app.addHook('onSend', async (request, reply, payload) => {
      if (handled.has(request)) return payload;
      handled.add(request);
      const url = request.routeOptions.url ?? '';
      const status = reply.statusCode;
      const code = request.errorCode ?? null;
      const body = (request.body ?? {}) as Record<string, unknown>;
      const entries: AuditEntryInput[] = [];
      const side: Promise<unknown>[] = [];
      const ok = status >= 200 && status < 300;
      const anon = auditContextOf(request, null);

      if (request.method === 'POST' && url === `${API}/auth/login`) {
        const username = typeof body.username === 'string' ? body.username.slice(0, 100) : null;
        if (ok) {
          const json = parseJson(payload);
          const u = json?.user as { user_id?: string; username?: string; role?: string } | undefined;
          if (u?.user_id && u.role) {
            const p: Principal = { type: 'user', id: u.user_id, role: u.role as Principal['role'], name: u.username ?? '' };
            entries.push({ ...auditContextOf(request, p), action: 'login', resource_type: 'user', resource_id: u.user_id, outcome: 'success' });
          }
        } else if (username !== null && (status === 401 || status === 429)) {
          const mfaChallenge = code === 'MFA_REQUIRED' && typeof body.totp_code !== 'string';
          entries.push({
            ...anon, action: 'login_failed', resource_type: 'user', resource_id: username,
            fields: [code ?? String(status)], outcome: status === 429 ? 'denied' : 'failure',
            risk_level: mfaChallenge ? 'low' : 'medium',
          });
          // A wrong password or a wrong MFA code counts; the first step of an MFA login (no code yet) and a locked-out retry do not.
          if (status === 401 && !mfaChallenge) side.push(detector.noteLoginFailure(username, request.ip));
        }
      } else if (request.method === 'POST' && url === `${API}/auth/refresh`) {
        if (ok) {
          const p = principalFromClaims(claimsOf(parseJson(payload)?.access_token));
          entries.push({ ...auditContextOf(request, p), action: 'token_refresh', resource_type: p?.type ?? 'token', resource_id: p?.id ?? null, outcome: 'success' });
        } else if (status === 401) {
          const p = principalFromClaims(claimsOf(body.refresh_token));
          entries.push({
            ...anon, action: code === 'TOKEN_REUSED' ? 'token_reused' : 'token_refresh', resource_type: p?.type ?? 'token', resource_id: p?.id ?? null,
            fields: [code ?? '401'], outcome: 'failure',
          });
        }
      } else if (request.method === 'POST' && url === `${API}/auth/logout` && ok) {
        entries.push({ ...auditContextOf(request), action: 'logout', resource_type: request.principal?.type ?? 'user', resource_id: request.principal?.id ?? null, outcome: 'success' });
      } else if (request.method === 'POST' && url === `${API}/auth/token`) {
        const agentId = typeof body.agent_id === 'string' ? body.agent_id.slice(0, 64) : null;
        if (ok) {
          const p = principalFromClaims(claimsOf(parseJson(payload)?.access_token));
          entries.push({ ...auditContextOf(request, p), action: 'token_exchange', resource_type: 'agent', resource_id: agentId, outcome: 'success' });
        } else if (agentId !== null && status === 401) {
          entries.push({ ...anon, action: 'token_exchange', resource_type: 'agent', resource_id: agentId, fields: [code ?? '401'], outcome: 'failure' });
          side.push(detector.noteLoginFailure(`agent:${agentId}`, request.ip));
        }
      } else if (status === 401 || status === 403) {
        const principal = request.principal ?? stashedFailures.get(request) ?? null;
        const grant = grants.get(request);
        entries.push({
          ...auditContextOf(request, grant ? null : principal),
          action: status === 401 ? 'authentication_failed' : 'access_denied',
          resource_type: 'endpoint', resource_id: `${request.method} ${url || request.url.split('?')[0]}`.slice(0, 256),
          fields: [code ?? String(status)], outcome: 'denied',
        });
        side.push(detector.noteAuthFailure(principal && !grant ? principalKey(principal) : `ip:${request.ip}`, code ?? String(status)));
      }

      if (entries.length) await audit.append(db, entries);
      for (const p of side) await soft(p, 'breach detection');
      return payload;
    });

    // ---- audit ------------------------------------------------------------------------------
    app.get('/audit', { schema: { tags: ['audit'], querystring: AuditQuery }, ...kit.guard('audit:read') }, async (request) => {
      const q = request.query;
      const limit = q.limit ?? 50;
      const offset = q.offset ?? 0;
      const { entries, total } = await audit.list(
        { actor: q.actor, actor_type: q.actor_type, action: q.action, resource_type: q.resource_type, resource_id: q.resource_id, outcome: q.outcome, from: q.from, to: q.to },
        { limit, offset, order: q.sort === 'timestamp:asc' ? 'asc' : 'desc' },
      );
      return { entries, pagination: paginate(total, limit, offset) };
    });

    app.get('/audit/verify', { schema: { tags: ['audit'] }, ...kit.guard('audit:read') }, async (request) => {
      const result = await audit.verify();
      if (!result.ok) await soft(detector.checkAuditChain(result), 'audit chain alert');
      await audit.audit(db, auditContextOf(request), { action: 'verify', resource_type: 'audit_log', resource_id: null, outcome: result.ok ? 'success' : 'failure', risk_level: result.ok ? 'low' : 'critical' });
      return result;
    });

    // ---- security alerts --------------------------------------------------------------------
    app.get('/security/alerts', { schema: { tags: ['security'], querystring: AlertsQuery }, ...kit.guard('security:alerts') }, async (request) => {
      const q = request.query;
      const limit = q.limit ?? 50;
      const offset = q.offset ?? 0;
      const { alerts: rows, total } = await alerts.list({ rule: q.rule, severity: q.severity, acknowledged: q.acknowledged }, limit, offset, q.sort);
      return { alerts: rows, pagination: paginate(total, limit, offset) };
    });

    app.post('/security/alerts/:alert_id/ack', { schema: { tags: ['security'], params: IdParams('alert_id'), body: EmptyBody }, ...kit.guard('security:alerts') }, async (request) => {
      const p = request.principal!;
      return db.transaction(async (tx) => {
        const alert = await alerts.acknowledge(request.params.alert_id, `${p.type}:${p.name}`, tx);
        await audit.audit(tx, auditContextOf(request), { action: 'update', resource_type: 'security_alert', resource_id: alert.alert_id, fields: ['acknowledged_at', 'acknowledged_by'], outcome: 'success' });
        return alert;
      });
    });

    // ---- MFA --------------------------------------------------------------------------------
    const userOnly = async (request: FastifyRequest) => {
      if (request.principal?.type !== 'user') throw new ForbiddenError('INSUFFICIENT_PERMISSIONS', 'MFA is for users.');
    };
    const userGuard = kit.guard(null);
    const userOnlyGuard = { ...userGuard, preHandler: [...userGuard.preHandler, userOnly] };
    // Reachable while enrolment is overdue (MfaPolicy): these are how a user gets out of it.
    app.post('/auth/mfa/setup', { schema: { tags: ['auth'], body: EmptyBody }, config: { mfaEnrolment: true }, ...userOnlyGuard }, async (request) => {
      const p = request.principal!;
      const setup = await mfa.setup(p.id);
      await audit.audit(db, auditContextOf(request), { action: 'mfa_setup', resource_type: 'user', resource_id: p.id, fields: ['mfa_pending_secret', 'recovery_codes'], data_classification: 'restricted', outcome: 'success' });
      return setup;
    });
    app.post('/auth/mfa/verify', { schema: { tags: ['auth'], body: MfaVerifyBody }, config: { mfaEnrolment: true }, ...userOnlyGuard }, async (request) => {
      const p = request.principal!;
      try {
        const r = await mfa.verify(p.id, request.body.code);
        kit.services.principals.invalidate('user', p.id); // an overdue enrolment ends with this request, not the cached state's expiry
        await audit.audit(db, auditContextOf(request), { action: 'mfa_verify', resource_type: 'user', resource_id: p.id, fields: ['mfa_enabled', 'mfa_secret'], outcome: 'success' });
        return r;
      } catch (err) {
        if (err instanceof AppError && err.code === 'INVALID_PARAMETERS') {
          await audit.audit(db, auditContextOf(request), { action: 'mfa_verify', resource_type: 'user', resource_id: p.id, outcome: 'failure' });
        }
        throw err;
      }
    });

    // ---- enrollment tokens ------------------------------------------------------------------
    app.post('/agents/enrollment-tokens', { schema: { tags: ['agents'], body: EnrollmentBody }, config: { idempotent: true }, ...kit.guard('agent:register', 'register') }, async (request, reply) => {
      const p = request.principal!;
      assertMayGrantRole(p, request.body.role);
      const issued = await db.transaction(async (tx) => {
        const t = await enrollment.create({ uses: request.body.uses, ttl_seconds: request.body.ttl_seconds, role: request.body.role, created_by: `${p.type}:${p.name}` }, tx);
        await audit.audit(tx, auditContextOf(request), { action: 'create', resource_type: 'enrollment_token', resource_id: t.token_id, fields: ['uses', 'ttl_seconds', 'role'], outcome: 'success', risk_level: 'medium' });
        return t;
      });
      return reply.status(201).send({ enrollment_token: issued.enrollment_token, token_id: issued.token_id, expires_at: issued.expires_at, uses: issued.uses, role: issued.role });
    });
  };
}
