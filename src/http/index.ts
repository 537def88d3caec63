/**
 * http: the REST transport (Fastify). Routes, validation, the error envelope, auth/rate-limit/
 * idempotency plumbing, OpenAPI docs. No business rules: routes call services.
 */
export { createApp, type App, type CreateAppOptions } from './create-app.ts';
export type { AppServices, RouteKit, HealthReport } from './http-deps.ts';
export { bearerToken } from './auth-hooks.ts';
