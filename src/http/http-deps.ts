/** Everything route plugins need, built in main.ts and passed as plugin options. */
import type { preHandlerAsyncHookHandler } from 'fastify';
import type { Config } from '../config/index.ts';
import type { Db } from '../store/index.ts';
import type { Coordination } from '../coordination/index.ts';
import type { EventBus, FieldCodec } from '../core/index.ts';
import type { Permission, PrincipalState, TokenService, UserService, SigningKeys } from '../auth/index.ts';
import type { AgentService } from '../agents/index.ts';
import type { TaskService, AssignmentEngine } from '../tasks/index.ts';
import type { HttpRateLimits } from './rate-limit.ts';
import type { Idempotency } from './idempotency.ts';
import type { RateClass } from './request-context.ts';

export interface HealthReport {
  status: 'healthy' | 'degraded' | 'unhealthy';
  checks: Record<string, { status: 'healthy' | 'degraded' | 'unhealthy'; latency_ms?: number; error?: string; [k: string]: unknown }>;
}

export interface AppServices {
  config: Readonly<Config>;
  db: Db;
  coord: Coordination;
  bus: EventBus;
  codec: FieldCodec;
  signingKeys: SigningKeys;
  tokens: TokenService;
  principals: PrincipalState;
  users: UserService;
  agents: AgentService;
  tasks: TaskService;
  engine: AssignmentEngine;
  /** Overall health of the dependencies (store, coordination, external services). */
  health: () => Promise<HealthReport>;
  /** Readiness: store reachable and migrations applied. */
  ready: () => Promise<boolean>;
  version: string;
  startedAt: number;
  /** Observability (src/observability Metrics, wired by compose.ts): /metrics and /health/detailed figures. */
  observability?: {
    /** Prometheus text exposition. */
    scrape(): Promise<string>;
    contentType: string;
    /** Queue depths, event-loop lag and similar runtime figures for /health/detailed. */
    runtime(): Promise<Record<string, unknown>>;
  };
  /**
   * Resolves once the audit entries of these deliveries (task parameters handed to `agentId`)
   * are written, throws when they could not be: a REST claim then fails (SPEC §9).
   */
  deliveriesAudited?: (agentId: string, taskIds: string[]) => Promise<void>;
  /** Extra route plugins contributed by later subsystems (pipelines, security, ai…). */
  extraRoutes?: Array<(app: import('./app-types.ts').App, kit: RouteKit) => void | Promise<void>>;
}

/**
 * A route's guard. Authentication and permission run as the request arrives, before its body is
 * read: a caller without valid credentials is refused 401 without the server reading or parsing
 * what it sent (up to the route's body limit). The rate limit runs before the body is validated
 * (its `cost` may count the body's items), so a malformed request counts against its caller's
 * budget (principal, else IP) and carries the rate-limit headers like any other; the
 * Idempotency-Key is claimed after validation, so a 400 is never stored under a key. `cost` sees
 * the body before validation: it must not trust its shape.
 */
export interface GuardHooks {
  onRequest: preHandlerAsyncHookHandler[];
  preValidation: preHandlerAsyncHookHandler[];
  preHandler: preHandlerAsyncHookHandler[];
}

/** Per-route helpers handed to every route plugin. */
export interface RouteKit {
  authenticate: preHandlerAsyncHookHandler;
  require: (...p: Permission[]) => preHandlerAsyncHookHandler;
  /** A route's authentication, permission, rate limit and Idempotency-Key: spread into its options (`...kit.guard(…)`). */
  guard: (permission: Permission | Permission[] | null, rateClass?: RateClass, cost?: (body: unknown) => number) => GuardHooks;
  rateLimits: HttpRateLimits;
  idempotency: Idempotency;
  services: AppServices;
}
