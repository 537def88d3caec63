/**
 * The AI provider port and the hub that routes a task type to an ordered list of providers,
 * falling back to the next one when a provider fails (SPEC §10). The built-in `local` provider
 * (offline analysers) is registered by the built-in agents; remote providers (OpenAI-compatible,
 * Google, the Flask service) implement the same port and are put in front of it per task type.
 */
export interface AiProvider {
  readonly name: string;
  supports(taskType: string): boolean;
  analyze(taskType: string, input: Record<string, unknown>, ctx?: { reportProgress?: (p: number, message?: string) => void }): Promise<Record<string, unknown>>;
}

/** A failure that another provider would repeat (bad input): no fallback. */
export function isFinalFailure(err: unknown): boolean {
  const e = err as { retryable?: unknown; code?: unknown } | null;
  return !!e && e.retryable === false;
}

export interface AnalysisOutcome {
  provider: string;
  result: Record<string, unknown>;
  latency_ms: number;
  fallbacks_tried: string[];
}

export class AiHub {
  private readonly providers = new Map<string, AiProvider>();

  /** `routes`: task type → provider names in order; `default` applies to unlisted types. */
  constructor(private readonly routes: Record<string, string[]> = {}, private readonly defaultRoute: string[] = ['local']) {}

  register(p: AiProvider): void {
    this.providers.set(p.name, p);
  }

  routeFor(taskType: string): AiProvider[] {
    const names = this.routes[taskType] ?? this.defaultRoute;
    return names.map((n) => this.providers.get(n)).filter((p): p is AiProvider => !!p && p.supports(taskType));
  }

  supports(taskType: string): boolean {
    return this.routeFor(taskType).length > 0;
  }

  async analyze(taskType: string, input: Record<string, unknown>, ctx?: { reportProgress?: (p: number, message?: string) => void }): Promise<AnalysisOutcome> {
    const route = this.routeFor(taskType);
    if (!route.length) throw Object.assign(new Error(`No provider handles '${taskType}'.`), { code: 'UNSUPPORTED_TASK_TYPE', retryable: false });
    const tried: string[] = [];
    let last: unknown;
    for (const p of route) {
      const t0 = performance.now();
      try {
        const result = await p.analyze(taskType, input, ctx);
        return { provider: p.name, result, latency_ms: Number((performance.now() - t0).toFixed(2)), fallbacks_tried: tried };
      } catch (err) {
        last = err;
        tried.push(p.name);
        if (isFinalFailure(err)) throw err;
      }
    }
    throw last;
  }
}
