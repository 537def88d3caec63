/** Who is acting in a request, for the audit log: its principal (or another, or anonymous), IP, user agent and request id. */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/index.ts';
import { actorOf, type AuditContext } from '../security/index.ts';

export function auditContextOf(request: FastifyRequest, principal: Principal | null = request.principal): AuditContext {
  const ua = request.headers['user-agent'];
  return { actor: actorOf(principal, request.ip, typeof ua === 'string' ? ua : null), request_id: request.id };
}
