/**
 * Per-principal (else per-IP) rate limits by route class (SPEC §9), with X-RateLimit-* headers
 * on every response and Retry-After on 429. Limiters come from the coordination layer so
 * several processes share one budget when Redis is used.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, RateLimitedError } from '../core/index.ts';
import type { Coordination } from '../coordination/index.ts';
import type { Config } from '../config/index.ts';
import { principalKey } from '../auth/index.ts';
import type { RateClass } from './request-context.ts';
import { CoalescedLimiter, type ConsumeOutcome } from './coalesced-limiter.ts';

/**
 * A guard's `cost` for a body holding a list (`tasks` of a batch, `ciphertexts` of an
 * aggregation): one point per item, at least 1, at most `max`. It sees the body before
 * validation, so it trusts nothing about its shape.
 */
export function perItemCost(field: string, max = Infinity): (body: unknown) => number {
  return (body) => {
    const items = (body as Record<string, unknown> | null)?.[field];
    return Array.isArray(items) ? Math.min(Math.max(1, items.length), max) : 1;
  };
}

export class HttpRateLimits {
  private readonly limiters: Record<RateClass, CoalescedLimiter>;
  private readonly systemLimiters: Record<RateClass, CoalescedLimiter>;
  readonly points: Record<RateClass, number>;
  private readonly multiplier: number;

  constructor(coord: Coordination, limits: Config['limits'], private readonly onLimited?: (route: string) => void) {
    this.points = {
      default: limits.default_per_min,
      register: limits.register_per_min,
      task_create: limits.task_create_per_min,
      delegate: limits.delegate_per_min,
      health: limits.health_per_min,
      probe: limits.probe_per_min,
    };
    this.multiplier = limits.system_multiplier;
    // A principal's requests of one turn share one consume (see CoalescedLimiter).
    const mk = (cls: RateClass, mult: number) => {
      const points = this.points[cls] * mult;
      return new CoalescedLimiter(coord.createRateLimiter({ keyPrefix: `rl:${cls}${mult > 1 ? ':sys' : ''}`, points, durationSec: 60 }), points);
    };
    const classes = Object.keys(this.points) as RateClass[];
    this.limiters = Object.fromEntries(classes.map((c) => [c, mk(c, 1)])) as Record<RateClass, CoalescedLimiter>;
    this.systemLimiters = Object.fromEntries(classes.map((c) => [c, mk(c, this.multiplier)])) as Record<RateClass, CoalescedLimiter>;
  }

  /** Consumes `cost` points for the request's principal/IP; throws 429 when exhausted. */
  async consume(request: FastifyRequest, reply: FastifyReply, cls: RateClass, cost = 1): Promise<void> {
    const p = request.principal;
    const system = p?.role === 'system';
    const limiter = system ? this.systemLimiters[cls] : this.limiters[cls];
    const limit = this.points[cls] * (system ? this.multiplier : 1);
    const key = p ? principalKey(p) : `ip:${request.ip}`;
    let res: ConsumeOutcome;
    try {
      res = await limiter.consume(key, cost);
    } catch (err) {
      throw new AppError('SERVICE_UNAVAILABLE', 'Rate limiting is unavailable.', { retryAfter: 5, cause: err, expose: true });
    }
    this.headers(reply, limit, res.remaining, res.msBeforeNext);
    if (!res.allowed) {
      this.onLimited?.(request.routeOptions.url ?? 'unknown');
      throw new RateLimitedError(Math.max(1, Math.ceil(res.msBeforeNext / 1000)));
    }
  }

  /**
   * The point of a request refused anyway (401, 403, no such route): it counts against the
   * caller's budget and carries the headers, and a flood of them gets 429; with rate limiting
   * unavailable the request is still refused for what it is (no 503 instead).
   */
  async consumeRefused(request: FastifyRequest, reply: FastifyReply, cls: RateClass): Promise<void> {
    await this.consume(request, reply, cls, 1).catch((err: unknown) => {
      if (err instanceof RateLimitedError) throw err;
    });
  }

  private headers(reply: FastifyReply, limit: number, remaining: number, msBeforeNext: number): void {
    void reply.header('X-RateLimit-Limit', String(limit));
    void reply.header('X-RateLimit-Remaining', String(Math.max(0, remaining)));
    void reply.header('X-RateLimit-Reset', String(Math.ceil((Date.now() + msBeforeNext) / 1000)));
  }
}
