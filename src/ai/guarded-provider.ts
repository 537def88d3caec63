/**
 * A provider behind its own protections (SPEC §10): a rate limit, a timeout per call, retries with
 * exponential backoff, and a circuit breaker that opens after `breakerFailures` consecutive
 * failures, lets a trial call through after `halfOpenAfterMs`, and closes after `closeAfter`
 * successes (cockatiel closes on the trial's success; `ProbationBreaker` re-opens at once when a
 * call fails before the further successes). It also keeps the quality figures the hub reports
 * (calls, errors, invalid outputs, fallbacks, latency) and reports each call and breaker change
 * to the caller's hooks (metrics).
 *
 * Failures that another attempt would repeat (`isFinalFailure`: bad input) are not retried and do
 * not count against the breaker; a rate-limited call is refused before it reaches the provider.
 */
import {
  BrokenCircuitError, CircuitState, ConsecutiveBreaker, ExponentialBackoff, TaskCancelledError, TimeoutStrategy,
  circuitBreaker, handleWhen, retry, timeout, wrap, type IBreaker, type IPolicy,
} from 'cockatiel';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { AiProviderEvent, BreakerState } from '../observability/index.ts';
import { failureCode, isFinalFailure, type AiProvider, type AnalyzeContext } from './ai-provider.ts';

export interface ProviderGuardOptions {
  /** Per-call timeout (ms), by task type with a default (SPEC: 30 s; bias detection 45 s). */
  timeoutMs: number;
  timeoutMsByTaskType?: Readonly<Record<string, number>>;
  /** Retries after a failed attempt (exponential backoff from `retryBaseMs`). */
  retries: number;
  retryBaseMs?: number;
  breakerFailures: number;
  halfOpenAfterMs: number;
  /** Successes after a half-open trial before the circuit counts as closed again (SPEC: 2). */
  closeAfter?: number;
  /** Calls per minute this provider may take; the key is the provider's name. */
  limiter?: RateLimiterAbstract;
  /** Each call's duration (metrics). */
  onCall?: (provider: string, seconds: number) => void;
  onBreakerState?: (provider: string, state: BreakerState) => void;
  /** Each call's outcome, each refusal and each fallback past this provider (metrics). */
  onEvent?: (provider: string, event: AiProviderEvent) => void;
}

/** The quality figures of one provider (GET /ai/providers). */
export interface ProviderStatus {
  name: string;
  circuit: BreakerState;
  calls: number;
  errors: number;
  error_rate: number;
  invalid_outputs: number;
  rate_limited: number;
  /** Times the hub moved past this provider to the next one. */
  fallbacks: number;
  latency_ms: { last: number | null; avg: number | null };
  last_error: { at: string; code: string } | null;
}

/** A provider answered, but not with what the task type needs: counts as a failure, and the hub falls back. */
export class InvalidOutputError extends Error {
  readonly code = 'INVALID_OUTPUT';
  constructor(provider: string, why: string) {
    super(`${provider} returned an invalid output: ${why}`);
  }
}

/** Refused because the provider's own rate limit is used up (the hub falls back). */
export class ProviderRateLimitedError extends Error {
  readonly code = 'PROVIDER_RATE_LIMITED';
  constructor(provider: string, readonly retryAfterMs: number) {
    super(`${provider}: rate limit reached`);
  }
}

/** Refused because the provider's circuit is open (the hub falls back). */
export class ProviderUnavailableError extends Error {
  readonly code = 'PROVIDER_UNAVAILABLE';
  constructor(provider: string, why: string) {
    super(`${provider} is unavailable: ${why}`);
  }
}

/**
 * ConsecutiveBreaker with a probation after recovery: once a half-open trial succeeded, the next
 * `closeAfter - 1` calls must succeed too; a failure among them opens the circuit again at once.
 */
export class ProbationBreaker implements IBreaker {
  private readonly inner: ConsecutiveBreaker;
  private probation = 0;

  constructor(threshold: number, private readonly closeAfter: number) {
    this.inner = new ConsecutiveBreaker(threshold);
  }

  get state(): unknown {
    return { inner: this.inner.state, probation: this.probation };
  }

  set state(s: unknown) {
    const v = s as { inner: number; probation: number };
    this.inner.state = v.inner;
    this.probation = v.probation;
  }

  /** True while the circuit is closed but has not yet shown `closeAfter` successes. */
  get onProbation(): boolean {
    return this.probation > 0;
  }

  success(state: CircuitState): void {
    this.inner.success();
    if (state === CircuitState.HalfOpen) this.probation = this.closeAfter - 1;
    else if (this.probation > 0) this.probation--;
  }

  failure(state: CircuitState): boolean {
    if (state === CircuitState.Closed && this.probation > 0) {
      this.probation = 0;
      return true;
    }
    this.probation = 0;
    return state === CircuitState.HalfOpen || this.inner.failure();
  }
}

export class GuardedProvider implements AiProvider {
  readonly name: string;
  private readonly breaker: ProbationBreaker;
  private readonly breakerPolicy;
  private readonly retryPolicy: IPolicy;
  /** Every call outcome, refusal and fallback so far: the quality figures derive from it. */
  private readonly tally: Record<AiProviderEvent, number> = { success: 0, error: 0, invalid_output: 0, timeout: 0, rate_limited: 0, circuit_open: 0, fallback: 0 };
  private latencySum = 0;
  private latencyLast: number | null = null;
  private lastError: { at: string; code: string } | null = null;
  private reported: BreakerState = 'closed';

  constructor(private readonly inner: AiProvider, private readonly o: ProviderGuardOptions) {
    this.name = inner.name;
    this.breaker = new ProbationBreaker(o.breakerFailures, o.closeAfter ?? 2);
    const counted = handleWhen((err) => !isFinalFailure(err));
    this.breakerPolicy = circuitBreaker(counted, { halfOpenAfter: o.halfOpenAfterMs, breaker: this.breaker });
    this.breakerPolicy.onStateChange(() => this.reportState());
    // Not retried: bad input, an open circuit, and a provider that already knows it is down (`failFast`).
    this.retryPolicy = retry(handleWhen((err) => !isFinalFailure(err) && !(err instanceof BrokenCircuitError) && (err as { failFast?: unknown }).failFast !== true), {
      maxAttempts: o.retries,
      backoff: new ExponentialBackoff({ initialDelay: o.retryBaseMs ?? 250, maxDelay: 5_000 }),
    });
  }

  supports(taskType: string, input?: Record<string, unknown>): boolean {
    return this.inner.supports(taskType, input);
  }

  /** Where the circuit stands; `half_open` also while a recovered circuit is on probation. */
  get circuit(): BreakerState {
    const s = this.breakerPolicy.state;
    if (s === CircuitState.Open || s === CircuitState.Isolated) return 'open';
    if (s === CircuitState.HalfOpen || this.breaker.onProbation) return 'half_open';
    return 'closed';
  }

  private reportState(): void {
    const now = this.circuit;
    if (now === this.reported) return;
    this.reported = now;
    this.o.onBreakerState?.(this.name, now);
  }

  private note(event: AiProviderEvent): void {
    this.tally[event]++;
    this.o.onEvent?.(this.name, event);
  }

  /** The hub moved past this provider to the next one. */
  noteFallback(): void {
    this.note('fallback');
  }

  async analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>> {
    if (this.o.limiter) {
      try {
        await this.o.limiter.consume(this.name);
      } catch (res) {
        // A store error (coordination unreachable) lets the call through: the provider's own limits still apply.
        if (!(res instanceof Error)) {
          this.note('rate_limited');
          throw new ProviderRateLimitedError(this.name, (res as { msBeforeNext?: number }).msBeforeNext ?? 60_000);
        }
      }
    }
    await ctx?.beforeSend?.(this.name);
    const ms = this.o.timeoutMsByTaskType?.[taskType] ?? this.o.timeoutMs;
    const perCall = timeout(ms, TimeoutStrategy.Aggressive);
    try {
      // Each attempt (retries included) is timed and counted on its own, then seen by the breaker.
      return await wrap(this.retryPolicy, this.breakerPolicy).execute(async () => {
        const t0 = performance.now();
        try {
          const out = await perCall.execute(({ signal }) => this.inner.analyze(taskType, input, { ...ctx, signal }));
          this.observe(t0);
          this.note('success');
          return out;
        } catch (err) {
          this.observe(t0);
          this.noteError(err);
          throw err;
        }
      });
    } catch (err) {
      if (err instanceof BrokenCircuitError) {
        this.note('circuit_open');
        throw new ProviderUnavailableError(this.name, 'circuit open');
      }
      if (err instanceof TaskCancelledError) throw Object.assign(new Error(`${this.name} timed out after ${ms} ms`), { code: 'TIMEOUT' });
      throw err;
    } finally {
      this.reportState();
    }
  }

  private observe(t0: number): void {
    const ms = performance.now() - t0;
    this.latencyLast = ms;
    this.latencySum += ms;
    this.o.onCall?.(this.name, ms / 1000);
  }

  private noteError(err: unknown): void {
    const timedOut = err instanceof TaskCancelledError;
    this.note(err instanceof InvalidOutputError ? 'invalid_output' : timedOut ? 'timeout' : 'error');
    this.lastError = { at: new Date().toISOString(), code: timedOut ? 'TIMEOUT' : failureCode(err) };
  }

  status(): ProviderStatus {
    const round = (n: number) => Number(n.toFixed(2));
    const t = this.tally;
    const errors = t.error + t.invalid_output + t.timeout;
    const calls = t.success + errors;
    return {
      name: this.name, circuit: this.circuit, calls, errors,
      error_rate: calls ? round(errors / calls) : 0,
      invalid_outputs: t.invalid_output, rate_limited: t.rate_limited, fallbacks: t.fallback,
      latency_ms: { last: this.latencyLast === null ? null : round(this.latencyLast), avg: calls ? round(this.latencySum / calls) : null },
      last_error: this.lastError,
    };
  }
}
