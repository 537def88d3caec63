/**
 * /agents (SPEC §5), and the administration of enrollment tokens (SPEC §4.2; issuing them is
 * POST /agents/enrollment-tokens in security-routes):
 * - GET    /agents/enrollment-tokens              (`agent:register`) list, never the secret
 * - DELETE /agents/enrollment-tokens/{token_id}   (`agent:register`) revoke
 */
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { auditContextOf } from '../audit-context.ts';
import { AppError, ForbiddenError, NotFoundError } from '../../core/index.ts';
import { EmptyBody, IdParams, paginate } from '../../contracts/common.ts';
import { DiscoverQuery, HeartbeatBody, ListAgentsQuery, ListEnrollmentTokensQuery, RegisterAgentBody, UpdateAgentBody, Capability } from '../../contracts/agents.ts';
import { assertMayGrantRole, hasPermission } from '../../auth/index.ts';
import type { AuditLog, EnrollmentTokens } from '../../security/index.ts';
import { enrollmentAware, enrollmentGrantOf } from './security-routes.ts';
import Value from 'typebox/value';

const Params = IdParams('agent_id');
const TokenParams = IdParams('token_id');

/**
 * Listing and revoking enrollment tokens, under `agent:register` (who may issue them may see and
 * withdraw them), rate-limited like every route and audited in the transaction of the access.
 */
export function enrollmentTokenRoutes(deps: { audit: AuditLog; enrollment: EnrollmentTokens }) {
  const { enrollment } = deps;
  return function enrollmentTokenPlugin(app: App, kit: RouteKit): void {
    const db = kit.services.db;
    const tags = ['agents'];

    app.get('/agents/enrollment-tokens', { schema: { tags, querystring: ListEnrollmentTokensQuery }, ...kit.guard('agent:register') }, async (request) => {
      const limit = request.query.limit ?? 50;
      const offset = request.query.offset ?? 0;
      const { tokens, total } = await db.transaction(async (tx) => {
        const page = await enrollment.list(limit, offset, tx);
        await deps.audit.audit(tx, auditContextOf(request), {
          action: 'read', resource_type: 'enrollment_token', resource_ids: page.tokens.map((x) => x.token_id),
          fields: ['role', 'uses_left', 'expires_at', 'created_by'], outcome: 'success',
        });
        return page;
      });
      return { enrollment_tokens: tokens, pagination: paginate(total, limit, offset) };
    });

    app.delete('/agents/enrollment-tokens/:token_id', { schema: { tags, params: TokenParams }, ...kit.guard('agent:register') }, async (request, reply) => {
      await db.transaction(async (tx) => {
        const revoked = await enrollment.revoke(request.params.token_id, tx);
        if (!revoked) throw new NotFoundError('NOT_FOUND', 'Enrollment token not found.');
        await deps.audit.audit(tx, auditContextOf(request), {
          action: 'delete', resource_type: 'enrollment_token', resource_id: revoked.token_id, fields: ['revoked_at'], outcome: 'success', risk_level: 'medium',
        });
      });
      return reply.status(204).send();
    });
  };
}

export function agentRoutes(app: App, kit: RouteKit): void {
  const { agents } = kit.services;
  const tags = ['agents'];

  // `Bearer mcp_et_…` (an enrollment token, SPEC §4.2) also authorises registration, with the token's role.
  app.post('/agents/register', { schema: { tags, body: RegisterAgentBody }, config: { idempotent: true }, ...enrollmentAware(kit, kit.guard('agent:register', 'register')) }, async (request, reply) => {
    const grant = enrollmentGrantOf(request);
    // With an enrollment token the role is the token's (checked when the token was issued).
    if (!grant) assertMayGrantRole(request.principal!, request.body.role);
    const { agent, api_key, tokens, permissions } = await agents.register(grant ? { ...request.body, role: grant.role } : request.body, { registeredBy: request.principal!.name })
      .catch(async (err: unknown) => { await grant?.refund(); throw err; });
    return reply.status(201).send({
      agent_id: agent.agent_id,
      status: 'active',
      registered_at: agent.registered_at.toISOString(),
      api_key,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      token_type: 'Bearer',
      expires_in: tokens.expires_in,
      permissions,
    });
  });

  app.get('/agents', { schema: { tags, querystring: ListAgentsQuery }, ...kit.guard('agent:read') }, async (request) => {
    const q = request.query;
    const limit = q.limit ?? 50;
    const offset = q.offset ?? 0;
    const filter = { type: q.type, capabilities: q.capability ? [q.capability] : undefined };
    if (!q.status) {
      const { agents: page, total } = await agents.list(filter, limit, offset, q.sort);
      return { agents: page, pagination: paginate(total, limit, offset) };
    }
    // `busy` is derived from live load, so a status filter applies to the views.
    const filtered = (await agents.all({ ...filter, status: q.status === 'busy' ? undefined : q.status }, q.sort)).filter((a) => a.status === q.status);
    return { agents: filtered.slice(offset, offset + limit), pagination: paginate(filtered.length, limit, offset) };
  });

  app.get('/agents/discover', { schema: { tags, querystring: DiscoverQuery }, ...kit.guard('agent:read') }, async (request) => {
    const caps = request.query.capabilities.split(',').map((c) => c.trim()).filter(Boolean);
    const bad = caps.filter((c) => !Value.Check(Capability, c));
    if (!caps.length || bad.length) {
      throw new AppError('INVALID_CAPABILITIES', 'Capabilities must be a comma-separated list of names like text_processing.', { details: { field_errors: (bad.length ? bad : ['(empty)']).map((c) => ({ field: 'query.capabilities', message: `invalid capability '${c}'` })) } });
    }
    const limit = request.query.limit ?? 50;
    const offset = request.query.offset ?? 0;
    const found = await agents.discover(caps, { type: request.query.type, status: request.query.status }, limit, offset);
    // `count`: the agents on this page (kept from before pagination); `pagination.total`: all that match.
    return { agents: found.agents, capabilities: caps, count: found.agents.length, pagination: paginate(found.total, limit, offset) };
  });

  app.get('/agents/:agent_id', { schema: { tags, params: Params }, ...kit.guard('agent:read') }, async (request) => agents.detail(request.params.agent_id));

  app.put('/agents/:agent_id', { schema: { tags, params: Params, body: UpdateAgentBody }, ...kit.guard(null) }, async (request) => {
    const p = request.principal!;
    assertMayGrantRole(p, request.body.role);
    const after = await agents.update(request.params.agent_id, request.body, p, hasPermission(p.role, 'agent:manage'));
    return agents.view(after);
  });

  app.delete('/agents/:agent_id', { schema: { tags, params: Params }, ...kit.guard('agent:manage') }, async (request, reply) => {
    await agents.remove(request.params.agent_id);
    return reply.status(204).send();
  });

  app.post('/agents/:agent_id/heartbeat', { schema: { tags, params: Params, body: HeartbeatBody }, ...kit.guard(null) }, async (request) => {
    const p = request.principal!;
    if (p.type !== 'agent' || p.id !== request.params.agent_id) throw new ForbiddenError('UNAUTHORIZED_HEARTBEAT');
    const r = await agents.heartbeat(p.id, request.body, 'rest');
    return { status: r.status, next_heartbeat: r.next_heartbeat };
  });

  app.post('/agents/:agent_id/drain', { schema: { tags, params: Params, body: EmptyBody }, ...kit.guard(null) }, async (request) => {
    const p = request.principal!;
    const self = p.type === 'agent' && p.id === request.params.agent_id;
    if (!self && !hasPermission(p.role, 'agent:manage')) throw new ForbiddenError('INSUFFICIENT_PERMISSIONS');
    const a = await agents.drain(request.params.agent_id);
    return { agent_id: a.agent_id, status: a.status, draining: a.draining, current_tasks: await agents.repo.currentTasks(kit.services.db, a.agent_id) };
  });

  app.get('/agents/:agent_id/health', { schema: { tags, params: Params }, ...kit.guard('agent:read', 'health') }, async (request) => agents.health(request.params.agent_id));
  app.get('/agents/:agent_id/metrics', { schema: { tags, params: Params }, ...kit.guard('agent:read') }, async (request) => agents.metrics(request.params.agent_id));
}
