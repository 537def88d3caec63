/**
 * Composition of the AI service hub (SPEC §10): the providers the config enables — `local`
 * always; `openai` and `google` when their API keys are set; `flask` (the emotional-analysis
 * service) when some route names it — each behind a GuardedProvider (timeout, retries, circuit
 * breaker, rate limit across processes), routed per task type with fallback. Flask results are
 * cached sealed in the coordination store under a keyed hash; its health is polled.
 * Part of the composition root: it knows config, security, coordination, observability and ai.
 */
import type { Config } from './config/index.ts';
import type { Coordination } from './coordination/index.ts';
import type { Logger, Metrics } from './observability/index.ts';
import type { BlindIndex, FieldCipher } from './security/index.ts';
import { AiHub, GoogleProvider, GuardedProvider, OpenAiProvider, type AiProvider, type ProviderStatus } from './ai/index.ts';
import { FlaskService, type FlaskStatus } from './integrations/index.ts';

export interface AiServices {
  hub: AiHub;
  /** Quality figures of each guarded provider, and the routes (GET /ai/providers). */
  providers: () => { providers: Array<ProviderStatus | { name: 'local'; circuit: 'closed' }>; routes: Record<string, readonly string[]>; default_route: readonly string[] };
  /** External services and their status (GET /discovery/services, health checks). */
  services: () => Array<FlaskStatus & { routed: boolean; circuit: string | null }>;
  stop: () => void;
}

export function composeAi(cfg: Config, deps: { coord: Coordination; cipher: FieldCipher; blindIndex: BlindIndex; metrics: Metrics; logger: Logger; local: AiProvider }): AiServices {
  const ai = cfg.ai;
  const routed = new Set([...ai.default_route, ...Object.values(ai.routes).flat()]);
  const hub = new AiHub(ai.routes, ai.default_route);
  hub.register(deps.local);
  const guarded: GuardedProvider[] = [];
  const guard = (p: AiProvider, perMin: number) => {
    const g = new GuardedProvider(p, {
      timeoutMs: ai.timeout_ms, timeoutMsByTaskType: { bias_detection: ai.bias_timeout_ms },
      retries: ai.retries, retryBaseMs: ai.retry_base_ms,
      breakerFailures: ai.breaker_failures, halfOpenAfterMs: ai.breaker_half_open_ms,
      limiter: deps.coord.createRateLimiter({ keyPrefix: `ai:${p.name}`, points: perMin, durationSec: 60 }),
      onCall: (name, seconds) => deps.metrics.externalCall(name, 'analyze', seconds),
      onEvent: (name, event) => deps.metrics.aiProviderEvent(name, event),
      onBreakerState: (name, state) => {
        deps.metrics.breakerState(name, state);
        deps.logger.warn({ provider: name, state }, 'AI provider circuit breaker changed state');
      },
    });
    deps.metrics.breakerState(p.name, 'closed');
    guarded.push(g);
    hub.register(g);
  };
  if (ai.openai_api_key) guard(new OpenAiProvider({ apiKey: ai.openai_api_key, baseUrl: ai.openai_base_url || undefined, model: ai.openai_model }), ai.openai_per_min);
  if (ai.google_api_key) guard(new GoogleProvider({ apiKey: ai.google_api_key, baseUrl: ai.google_base_url || undefined, model: ai.google_model }), ai.google_per_min);

  const integ = cfg.integrations;
  const ttlMs = integ.flask_cache_seconds * 1000;
  const flask = new FlaskService({
    baseUrl: integ.flask_url, apiKey: integ.flask_api_key,
    cache: ttlMs > 0 ? {
      key: (material) => deps.blindIndex.exact('analysis_cache', material),
      get: async (key) => {
        const sealed = await deps.coord.get<string>(`ai:flask:${key}`);
        return sealed ? deps.cipher.decrypt<Record<string, unknown>>(sealed, { table: 'cache', column: 'flask', rowId: key }) : null;
      },
      set: (key, value) => deps.coord.set(`ai:flask:${key}`, deps.cipher.encrypt(value, { table: 'cache', column: 'flask', rowId: key }), ttlMs),
    } : undefined,
    healthIntervalMs: integ.flask_health_ms,
    onHealthCheck: (seconds) => deps.metrics.externalCall('flask', 'health', seconds),
    onError: (err, what) => deps.logger.warn({ err, what }, 'flask service side effect failed'),
  });
  const flaskRouted = routed.has('flask');
  if (flaskRouted) {
    guard(flask, ai.flask_per_min);
    flask.start();
  }
  const flaskGuard = () => guarded.find((g) => g.name === 'flask');

  return {
    hub,
    providers: () => ({
      providers: [{ name: 'local', circuit: 'closed' as const }, ...guarded.map((g) => g.status())],
      routes: ai.routes, default_route: ai.default_route,
    }),
    services: () => [{ ...flask.status(), routed: flaskRouted, circuit: flaskGuard()?.circuit ?? null }],
    stop: () => flask.stop(),
  };
}
