/** Health, liveness, readiness (SPEC §11). `/health` is public; details need a valid token. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { bearerToken } from '../auth-hooks.ts';

export function healthRoutes(app: App, kit: RouteKit): void {
  const s = kit.services;
  const summary = (status: string) => ({ status, timestamp: new Date().toISOString(), version: s.version, uptime: Math.round((Date.now() - s.startedAt) / 1000) });

  app.get('/health', { schema: { tags: ['health'], security: [] }, config: { public: true }, preValidation: [async (request, reply) => kit.rateLimits.consume(request, reply, 'health')] }, async (request) => {
    const report = await s.health();
    const token = bearerToken(request.headers.authorization);
    if (token) {
      const v = await s.tokens.verify(token, 'access').catch(() => null);
      const live = v && (await s.principals.current(v.principal));
      if (live && !live.mfaOverdue) return { ...summary(report.status), checks: report.checks };
    }
    return summary(report.status);
  });

  app.get('/health/detailed', { schema: { tags: ['health'] }, ...kit.guard('system:health', 'health') }, async () => {
    const report = await s.health();
    const mem = process.memoryUsage();
    return {
      ...summary(report.status),
      checks: report.checks,
      resources: { rss_bytes: mem.rss, heap_used_bytes: mem.heapUsed, heap_total_bytes: mem.heapTotal, cpu_seconds: process.cpuUsage().user / 1e6, pid: process.pid },
      // queue depths and event-loop lag (observability); a failing store must not fail the report
      ...(s.observability ? await s.observability.runtime().catch(() => ({ queues: null })) : {}),
    };
  });

  const probeLimit = { preValidation: [async (request: FastifyRequest, reply: FastifyReply) => kit.rateLimits.consume(request, reply, 'probe')] };
  app.get('/live', { schema: { tags: ['health'], security: [] }, config: { public: true }, ...probeLimit }, async () => ({ status: 'alive', timestamp: new Date().toISOString() }));

  app.get('/ready', { schema: { tags: ['health'], security: [] }, config: { public: true }, ...probeLimit }, async (_request, reply) => {
    const ok = await s.ready().catch(() => false);
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', timestamp: new Date().toISOString() });
  });
}
