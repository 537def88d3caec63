/**
 * GET /metrics (SPEC §11): the Prometheus exposition, at the root (not under /api/v1).
 * When `MCP_METRICS_TOKEN` is set it must be presented as `Authorization: Bearer <token>`;
 * otherwise the endpoint is open (behind the deployment's network policy) and per-IP limited.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { AppError } from '../../core/index.ts';
import { bearerToken } from '../auth-hooks.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function metricsRoutes(app: App, kit: RouteKit): void {
  const obs = kit.services.observability;
  if (!obs) return;
  const expected = kit.services.config.security.metrics_token;
  const expectedDigest = expected ? digest(expected) : null;

  app.get('/metrics', {
    schema: { hide: true },
    config: { public: true },
    preHandler: [async (request, reply) => {
      if (!expectedDigest) return kit.rateLimits.consume(request, reply, 'health');
      const given = bearerToken(request.headers.authorization);
      // Compare digests: constant time and independent of the presented length.
      if (given && timingSafeEqual(digest(given), expectedDigest)) return; // the scraper: not limited
      // A refused scrape counts against its IP's budget (guessing the token gets 429).
      await kit.rateLimits.consumeRefused(request, reply, 'default');
      if (!given) {
        void reply.header('WWW-Authenticate', 'Bearer realm="metrics"');
        throw new AppError('MISSING_AUTHENTICATION', 'A metrics token is required.');
      }
      throw new AppError('INVALID_TOKEN', 'The metrics token is invalid.');
    }],
  }, async (_request, reply) => {
    const body = await obs.scrape();
    return reply.header('Content-Type', obs.contentType).header('Cache-Control', 'no-store').send(body);
  });
}
