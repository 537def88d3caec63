/**
 * The AI provider port and the hub that routes a task type to an ordered list of providers,
 * falling back to the next one when a provider fails (SPEC §10). The built-in `local` provider
 * (offline analysers) is registered by the composition root; remote providers (OpenAI-compatible,
 * Google, the Flask service) implement the same port, each behind its own GuardedProvider
 * (timeout, retries, circuit breaker, rate limit), and are put in front of it per task type.
 */
export interface AnalyzeContext {
  reportProgress?: (p: number, message?: string) => void;
  /** Aborted when the call's time is up (the guard's timeout): a provider stops its request. */
  signal?: AbortSignal;
  /** For a provider's logs and metadata (the request or task id); never PHI. */
  requestId?: string;
  /**
   * Called before the input leaves this server for a remote provider (GuardedProvider), with its
   * name: the caller audits the disclosure there. When it throws, nothing is sent and the route
   * moves on (an unaudited disclosure does not happen).
   */
  beforeSend?: (provider: string) => Promise<void>;
}

export interface AiProvider {
  readonly name: string;
  /** Whether it can run the task type (on this input, when given: a remote model needs `text`). */
  supports(taskType: string, input?: Record<string, unknown>): boolean;
  analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>>;
}

/** A failure that another provider would repeat (bad input): no fallback, no retry. */
export function isFinalFailure(err: unknown): boolean {
  return (err as { retryable?: unknown } | null)?.retryable === false;
}

/** The input's `text` when it has some to analyse (not blank), else null. */
export function inputText(input: Record<string, unknown>): string | null {
  return typeof input.text === 'string' && input.text.trim() !== '' ? input.text : null;
}

/** The final failure of an input without text: no provider that needs one could do better. */
export function missingText(): Error {
  return Object.assign(new Error('input_data.text is required.'), { code: 'INVALID_PARAMETERS', retryable: false });
}

export interface AnalysisOutcome {
  provider: string;
  result: Record<string, unknown>;
  latency_ms: number;
  fallbacks_tried: string[];
}

/** Every provider on the route failed; `failures` names each one's error code (never PHI). */
export class AllProvidersFailedError extends Error {
  readonly code = 'ALL_PROVIDERS_FAILED';
  constructor(readonly failures: ReadonlyArray<{ provider: string; code: string }>, options?: { cause?: unknown }) {
    super(`Every provider failed: ${failures.map((f) => `${f.provider} ${f.code}`).join(', ')}.`, options);
  }
}

/** A short code for a provider's failure (its `code` when it has one, else HTTP_<status>, else PROVIDER_ERROR). */
export function failureCode(err: unknown): string {
  const c = (err as { code?: unknown } | null)?.code;
  if (typeof c === 'string' && /^[A-Z_]{2,40}$/.test(c)) return c;
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' ? `HTTP_${status}` : 'PROVIDER_ERROR';
}

/** A provider the hub can tell that it was passed over (GuardedProvider counts fallbacks). */
interface FallbackAware {
  noteFallback?: () => void;
}

export class AiHub {
  private readonly providers = new Map<string, AiProvider & FallbackAware>();

  /** `routes`: task type → provider names in order; `default` applies to unlisted types. */
  constructor(private readonly routes: Readonly<Record<string, readonly string[]>> = {}, private readonly defaultRoute: readonly string[] = ['local']) {}

  register(p: AiProvider & FallbackAware): void {
    this.providers.set(p.name, p);
  }

  /** The configured route of a task type (names, registered or not). */
  routeNames(taskType: string): readonly string[] {
    return this.routes[taskType] ?? this.defaultRoute;
  }

  /** The registered providers of the route (or of `names`) that can run the task type (on `input`). */
  routeFor(taskType: string, names: readonly string[] = this.routeNames(taskType), input?: Record<string, unknown>): Array<AiProvider & FallbackAware> {
    return names.map((n) => this.providers.get(n)).filter((p): p is AiProvider & FallbackAware => !!p && p.supports(taskType, input));
  }

  supports(taskType: string, names?: readonly string[]): boolean {
    return this.routeFor(taskType, names).length > 0;
  }

  /** Runs the task type on its route (or on `names`, in that order), falling back on failures another provider may not repeat. */
  async analyze(taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext, names?: readonly string[]): Promise<AnalysisOutcome> {
    const route = this.routeFor(taskType, names, input);
    if (!route.length) throw Object.assign(new Error(`No provider handles '${taskType}'.`), { code: 'UNSUPPORTED_TASK_TYPE', retryable: false });
    const failures: Array<{ provider: string; code: string }> = [];
    let last: unknown;
    for (const [i, p] of route.entries()) {
      const t0 = performance.now();
      try {
        const result = await p.analyze(taskType, input, ctx);
        return { provider: p.name, result, latency_ms: Number((performance.now() - t0).toFixed(2)), fallbacks_tried: failures.map((f) => f.provider) };
      } catch (err) {
        last = err;
        failures.push({ provider: p.name, code: failureCode(err) });
        if (isFinalFailure(err)) throw err;
        if (i < route.length - 1) p.noteFallback?.();
      }
    }
    throw new AllProvidersFailedError(failures, { cause: last });
  }
}
