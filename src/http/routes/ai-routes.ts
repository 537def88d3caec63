/**
 * The AI service hub over HTTP (SPEC §10):
 *
 * - POST /ai/analyze (`task:create`, the `task_create` rate class): runs `task_type` on its
 *   route of providers (or the `providers` given, in that order) → `{provider, result,
 *   latency_ms, fallbacks_tried}`. The text is PHI: the request is audited (`execute` on
 *   `ai_analysis`, fields input_data) whatever its outcome, and each remote provider it is sent
 *   to before it is sent (`export` on `ai_provider` <name>). Every provider failing → 502
 *   EXTERNAL_SERVICE_ERROR (503 CIRCUIT_BREAKER_OPEN when every one was refused by its breaker);
 *   bad input or a task type no route serves → 400.
 * - GET /ai/providers (`system:health`): each provider's circuit and quality figures, the routes.
 * - GET /discovery/services (`system:health`): external services (the Flask service) and status.
 */
import Type from 'typebox';
import type { FastifyRequest } from 'fastify';
import type { App } from '../app-types.ts';
import type { RouteKit } from '../http-deps.ts';
import { auditContextOf } from '../audit-context.ts';
import { AppError } from '../../core/index.ts';
import type { AuditLog } from '../../security/index.ts';
import { AllProvidersFailedError, isFinalFailure, type AiHub, type AnalysisOutcome } from '../../ai/index.ts';

const ProviderName = Type.Union(['local', 'openai', 'google', 'flask'].map((p) => Type.Literal(p)));
const AnalyzeBody = Type.Object({
  task_type: Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }),
  input_data: Type.Object({
    text: Type.String({ minLength: 1, maxLength: 100_000 }),
    context: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown())),
  }, { additionalProperties: false }),
  providers: Type.Optional(Type.Array(ProviderName, { minItems: 1, maxItems: 4, uniqueItems: true })),
}, { additionalProperties: false });

export interface AiRouteDeps {
  hub: AiHub;
  providers: () => unknown;
  services: () => unknown[];
  audit: AuditLog;
}

/** The answer for a failed analysis: bad input 400; every provider refused by its breaker 503; else 502. */
function failure(err: unknown): AppError {
  if (isFinalFailure(err)) return new AppError('INVALID_PARAMETERS', (err as Error).message);
  const failures = err instanceof AllProvidersFailedError ? err.failures : [];
  if (failures.length && failures.every((f) => f.code === 'PROVIDER_UNAVAILABLE')) return new AppError('CIRCUIT_BREAKER_OPEN', undefined, { details: { failures } });
  return new AppError('EXTERNAL_SERVICE_ERROR', 'Every AI provider on the route failed.', { details: { failures } });
}

export function aiRoutes(deps: AiRouteDeps) {
  return function aiPlugin(app: App, kit: RouteKit): void {
    const audit = async (request: FastifyRequest, entry: { action: 'execute' | 'export'; resource_type: string; resource_id: string; outcome: 'success' | 'failure' }) => {
      await deps.audit.audit(kit.services.db, auditContextOf(request), { ...entry, fields: ['input_data'], data_classification: 'phi' });
    };

    app.post('/ai/analyze', { schema: { tags: ['ai'], body: AnalyzeBody }, ...kit.guard('task:create', 'task_create') }, async (request) => {
      const { task_type, input_data, providers } = request.body;
      const route = providers ?? deps.hub.routeNames(task_type);
      if (!deps.hub.routeFor(task_type, route).length) {
        throw new AppError('INVALID_PARAMETERS', `No configured provider handles '${task_type}'.`, { details: { field_errors: [{ field: 'task_type', message: `no provider among ${route.join(', ')} handles it` }] } });
      }
      let out: AnalysisOutcome;
      // Each remote provider the text is sent to is a disclosure: audited before it is sent.
      const beforeSend = (provider: string) => audit(request, { action: 'export', resource_type: 'ai_provider', resource_id: provider, outcome: 'success' });
      try {
        out = await deps.hub.analyze(task_type, input_data, { requestId: request.id, beforeSend }, route);
      } catch (err) {
        await audit(request, { action: 'execute', resource_type: 'ai_analysis', resource_id: task_type, outcome: 'failure' });
        throw failure(err);
      }
      await audit(request, { action: 'execute', resource_type: 'ai_analysis', resource_id: task_type, outcome: 'success' });
      return out;
    });

    app.get('/ai/providers', { schema: { tags: ['ai'] }, ...kit.guard('system:health') }, async () => deps.providers());

    app.get('/discovery/services', { schema: { tags: ['ai'] }, ...kit.guard('system:health') }, async () => ({ services: deps.services() }));
  };
}
