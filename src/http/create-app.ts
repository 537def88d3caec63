/**
 * Builds the Fastify application (no listening): validation, the error envelope, request ids,
 * security headers, CORS, OpenAPI docs, auth/rate-limit/idempotency plumbing, and the routes.
 * The process side (ports, TLS, shutdown) is in http-server.ts.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import helmet from 'helmet';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Logger } from 'pino';
import { AppError, UnavailableError, ValidationError } from '../core/index.ts';
import { jsonDepthExceeds } from '../security/index.ts';
import { validatorCompiler } from './validation.ts';
import { errorHandler, sendError } from './error-handler.ts';
import { makeAuthenticate, makeRequirePermission } from './auth-hooks.ts';
import { HttpRateLimits } from './rate-limit.ts';
import { Idempotency } from './idempotency.ts';
import { lazyRequestLogger } from './request-logger.ts';
import type { AppServices, RouteKit } from './http-deps.ts';
import './request-context.ts';
import { authRoutes } from './routes/auth-routes.ts';
import { userRoutes } from './routes/user-routes.ts';
import { agentRoutes } from './routes/agent-routes.ts';
import { taskRoutes } from './routes/task-routes.ts';
import { healthRoutes } from './routes/health-routes.ts';
import { metricsRoutes } from './routes/metrics-routes.ts';
import { dashboardRoutes } from './routes/dashboard-routes.ts';

import type { App } from './app-types.ts';
export type { App };

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
/** `\u0000` escaped in JSON text (an odd run of backslashes before `u0000`): no text column can hold it. */
const NUL_ESCAPE = /(?<!\\)(?:\\\\)*\\u0000/;
/** Retry-After (s) of a request refused while the server shuts down: another process or a restart serves it. */
const CLOSING_RETRY_AFTER_S = 5;

export interface CreateAppOptions {
  services: AppServices;
  logger: Logger;
  /** Metrics hooks (observability) — optional so tests can build a bare app. */
  onResponse?: (route: string, method: string, status: number, seconds: number, errorCode?: string) => void;
  onRateLimited?: (route: string) => void;
  onAuthFailure?: Parameters<typeof makeAuthenticate>[0]['onAuthFailure'];
  /** PEM certificate and key: HTTPS with TLS 1.3 only. */
  tls?: { cert: Buffer; key: Buffer };
}

export async function createApp(opts: CreateAppOptions): Promise<App> {
  const { services } = opts;
  const cfg = services.config;
  // Security headers: one helmet middleware built at start-up and applied to every response
  // (@fastify/helmet rebuilt it — CSP parsing included — on every request).
  const securityHeaders = helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'", 'ws:', 'wss:'],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        // Without TLS the directive would make browsers fetch the dashboard's own scripts over
        // https:// — a page with no script when opened as http://host:8080 (helmetjs/helmet#480).
        upgradeInsecureRequests: cfg.server.tls_cert ? [] : null,
      },
    },
    frameguard: { action: 'deny' },
    strictTransportSecurity: cfg.server.tls_cert ? { maxAge: 31536000, includeSubDomains: true } : false,
    crossOriginEmbedderPolicy: false,
  });
  let counter = 0;
  const app = Fastify({
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.3' as const } } : {}),
    loggerInstance: opts.logger as unknown as FastifyBaseLogger,
    bodyLimit: cfg.server.body_limit,
    trustProxy: cfg.server.trust_proxy,
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: (logger, bindings, childOpts) => lazyRequestLogger(logger as unknown as Logger, bindings, childOpts),
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      const v = Array.isArray(given) ? given[0] : given;
      return v && REQUEST_ID_RE.test(v) ? v : `req-${Date.now().toString(36)}-${(counter++).toString(36)}`;
    },
    ajv: { customOptions: { removeAdditional: false } },
    // Requests arriving while the app closes are answered by the `closing` hook below, in the
    // SPEC §2 envelope; Fastify's own 503 has neither code, request id, Retry-After nor headers.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // A URL Fastify cannot route (bad percent-encoding, a path segment too long): the SPEC §2
    // envelope with the request id and security headers, the path not echoed (it may hold PHI).
    frameworkErrors: (_err, request, reply) => {
      void reply.header('X-Request-ID', request.id);
      securityHeaders(request.raw, reply.raw, () => {
        request.errorCode = 'VALIDATION_ERROR';
        void sendError(request, reply, new ValidationError('The URL is not valid (bad percent-encoding or a path segment too long).', [{ field: '(path)', message: 'is not a valid URL' }]));
      });
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(errorHandler);
  // JSON bodies: Fastify's own parser (prototype-poisoning checks kept) behind a nesting-depth
  // limit checked on the raw text, before anything deep is built.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const maxDepth = cfg.server.json_max_depth;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (jsonDepthExceeds(text, maxDepth)) {
      done(new ValidationError(`The JSON body is nested too deeply (at most ${maxDepth} levels).`, [{ field: '(body)', message: `nesting deeper than ${maxDepth}` }]), undefined);
      return;
    }
    if (text.includes('\\u0000') && NUL_ESCAPE.test(text)) {
      done(new ValidationError('Text may not contain the NUL character (\\u0000).', [{ field: '(body)', message: 'contains \\u0000' }]), undefined);
      return;
    }
    void parseJson(request, text, done);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('token', null);
  app.decorateRequest('idempotency', null);

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('X-Request-ID', request.id);
    // A NUL in the query string (`%00`): no text column can hold it; refused before it reaches one.
    if (request.url.includes('%00')) throw new ValidationError('The query may not contain the NUL character (%00).', [{ field: '(query)', message: 'contains %00' }]);
  });
  // POST routes with an optional body accept none at all.
  app.addHook('preValidation', async (request) => {
    if (request.method === 'POST' && request.body === undefined) request.body = {};
  });

  app.addHook('onRequest', (request, reply, done) => {
    securityHeaders(request.raw, reply.raw, (err?: unknown) => done(err as Error | undefined));
  });
  await app.register(cors, { origin: cfg.server.cors_origins.length ? [...cfg.server.cors_origins] : false, credentials: false });
  // Graceful shutdown: from the start of `app.close()` new requests (pipelined or on a busy
  // keep-alive connection; new connections are no longer accepted) get 503 SERVICE_UNAVAILABLE
  // with Retry-After, after the request-id, security-header and CORS hooks; requests already past
  // this hook run to completion (close waits for them). Fastify adds `Connection: close`.
  let closing = false;
  app.addHook('preClose', async () => { closing = true; });
  app.addHook('onRequest', async () => {
    if (closing) throw new UnavailableError('The server is shutting down.', CLOSING_RETRY_AFTER_S);
  });

  const rateLimits = new HttpRateLimits(services.coord, cfg.limits, opts.onRateLimited);
  // The API's description, its docs page and the token-verification keys: public, per-IP limited
  // like any other route (SPEC §2: every response carries the rate-limit headers).
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (route === '/openapi.json' || route === '/.well-known/jwks.json' || route?.startsWith('/docs')) await rateLimits.consume(request, reply, 'default');
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'MCP Server API', version: services.version, description: 'Management Control Panel: agents, tasks, pipelines. Errors use the envelope {error: {code, message, details, request_id}}.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, async () => app.swagger());

  const authDeps = { tokens: services.tokens, principals: services.principals, bus: services.bus, onAuthFailure: opts.onAuthFailure };
  const authenticate = makeAuthenticate(authDeps);
  const requirePermission = makeRequirePermission(authDeps);
  // The path is not echoed: it may hold PHI (ids, names typed into a URL). A request for no route
  // counts against its IP's budget and carries the rate-limit headers like any other.
  app.setNotFoundHandler(async (request, reply) => {
    await rateLimits.consumeRefused(request, reply, 'default');
    request.errorCode = 'NOT_FOUND';
    return sendError(request, reply, new AppError('NOT_FOUND', 'No such route.'));
  });
  const idempotency = new Idempotency(services.db, services.codec);

  const kit: RouteKit = {
    authenticate,
    require: requirePermission,
    rateLimits,
    idempotency,
    services,
    guard(permission, rateClass = 'default', cost) {
      const checks = [authenticate];
      if (permission) checks.push(requirePermission(...(Array.isArray(permission) ? permission : [permission])));
      return {
        onRequest: [async function authorize(this: FastifyInstance, request, reply) {
          try {
            for (const check of checks) await check.call(this, request, reply);
          } catch (err) {
            // A refused request (401, 403) counts against its caller's budget too — its principal's,
            // else its IP's — and carries the rate-limit headers; a flood of them gets 429.
            await rateLimits.consumeRefused(request, reply, rateClass);
            throw err;
          }
        }],
        preValidation: [async (request, reply) => rateLimits.consume(request, reply, rateClass, cost ? cost(request.body) : 1)],
        preHandler: [async (request, reply) => {
          if (request.routeOptions.config.idempotent) await idempotency.begin(request, reply);
        }],
      };
    },
  };

  app.addHook('onSend', async (request, reply, payload) => {
    if (request.idempotency) await idempotency.finish(request, reply.statusCode, payload);
    return payload;
  });
  // One structured line per request (no bodies: they may hold PHI or secrets), through the app's
  // logger: it names the request itself, so no per-request child is made for it.
  const log = opts.logger;
  app.addHook('onResponse', async (request, reply) => {
    const level = reply.statusCode >= 500 ? 'error' : 'info';
    if (!log.isLevelEnabled(level)) return;
    log[level]({
      component: 'http', request_id: request.id, method: request.method, route: request.routeOptions.url ?? 'unmatched',
      status: reply.statusCode, duration_ms: Number(reply.elapsedTime.toFixed(2)), principal: request.principal ? `${request.principal.type}:${request.principal.name}` : undefined,
      error_code: request.errorCode,
    }, 'request');
  });
  if (opts.onResponse) {
    const onResponse = opts.onResponse;
    app.addHook('onResponse', async (request, reply) => {
      onResponse(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000, request.errorCode);
    });
  }

  await app.register(async (api) => {
    const a = api as unknown as App;
    healthRoutes(a, kit);
    authRoutes(a, kit);
    userRoutes(a, kit);
    agentRoutes(a, kit);
    taskRoutes(a, kit);
    for (const extra of services.extraRoutes ?? []) await extra(a, kit);
  }, { prefix: '/api/v1' });
  app.get('/.well-known/jwks.json', { schema: { hide: true }, config: { public: true } }, async () => services.signingKeys.jwks());
  metricsRoutes(app, kit); // /metrics at the root, outside /api/v1
  dashboardRoutes(app, kit); // the dashboard at / and /ui/*
  return app;
}
