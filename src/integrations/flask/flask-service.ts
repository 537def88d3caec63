/**
 * The Flask emotional-analysis service adapter (SPEC §10), an AI provider named `flask`:
 *
 * - `POST {base}/analyze` `{text, context, metadata: {request_id, timestamp}}` with `X-API-Key`;
 *   the answer must be `{analysis: object, confidence: number, processing_time: number}` (else
 *   InvalidOutputError). 400/422 mean the input is wrong: a final failure (no fallback).
 * - Results are cached (300 s) through the injected cache (coordination: Redis when present),
 *   under a keyed hash of text + context and sealed (the answer is PHI; Redis never holds PHI in
 *   clear) — supplied by the composition root.
 * - `GET {base}/health` every `healthIntervalMs`; while the last check failed the adapter refuses
 *   at once (ServiceDownError, retryable), so the hub fails over to the next provider without
 *   waiting for a timeout. Timeouts, retries and the circuit breaker are the guard's
 *   (GuardedProvider), as for every provider.
 */
import type { AiProvider, AnalyzeContext } from '../../ai/index.ts';
import { InvalidOutputError, inputText, missingText } from '../../ai/index.ts';

/** Where answers are kept between calls (its own time to live), under `key` of text + context. */
export interface AnalysisCache {
  /** A keyed hash of the material (text + context): never the text itself. */
  key(material: string): string;
  get(key: string): Promise<Record<string, unknown> | null>;
  set(key: string, value: Record<string, unknown>): Promise<void>;
}

export interface FlaskServiceOptions {
  baseUrl: string;
  apiKey: string;
  cache?: AnalysisCache;
  healthIntervalMs?: number;
  healthTimeoutMs?: number;
  /** Each health check (metrics: mcp_external_service_duration_seconds{operation="health"}). */
  onHealthCheck?: (seconds: number, ok: boolean) => void;
  onError?: (err: unknown, what: string) => void;
}

export type ServiceStatus = 'up' | 'down' | 'unknown';

export interface FlaskStatus {
  name: 'flask';
  url: string;
  status: ServiceStatus;
  last_check: string | null;
  latency_ms: number | null;
  cache_hits: number;
}

/** The service's last health check failed: refused at once (and not retried) so the hub fails over. */
export class ServiceDownError extends Error {
  readonly code = 'SERVICE_DOWN';
  readonly retryable = true;
  readonly failFast = true;
  constructor() {
    super('The Flask service is down (last health check failed).');
  }
}

export class FlaskService implements AiProvider {
  readonly name = 'flask';
  private state: ServiceStatus = 'unknown';
  private lastCheck: Date | null = null;
  private lastLatency: number | null = null;
  private hits = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The base URL without a trailing slash, and as shown (without credentials). */
  private readonly base: string;
  readonly url: string;

  constructor(private readonly o: FlaskServiceOptions) {
    this.base = o.baseUrl.replace(/\/+$/, '');
    const shown = new URL(this.base);
    shown.username = '';
    shown.password = '';
    this.url = shown.toString().replace(/\/$/, '');
  }

  /** Every task type routed to it (the operator's routing decides what it serves). */
  supports(): boolean {
    return true;
  }

  async analyze(_taskType: string, input: Record<string, unknown>, ctx?: AnalyzeContext): Promise<Record<string, unknown>> {
    if (this.state === 'down') throw new ServiceDownError();
    const text = inputText(input);
    if (text === null) throw missingText();
    const context = input.context ?? {};
    const cache = this.o.cache;
    const key = cache?.key(`${text}\u0000${JSON.stringify(context)}`);
    if (cache && key) {
      const hit = await cache.get(key).catch((err: unknown) => { this.o.onError?.(err, 'flask cache read'); return null; });
      if (hit) {
        this.hits++;
        return hit;
      }
    }
    const res = await fetch(`${this.base}/analyze`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': this.o.apiKey },
      body: JSON.stringify({ text, context, metadata: { request_id: ctx?.requestId ?? null, timestamp: new Date().toISOString() } }),
      ...(ctx?.signal ? { signal: ctx.signal } : {}),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw Object.assign(new Error(`Flask service answered HTTP ${res.status}.`), { status: res.status, ...(res.status === 400 || res.status === 422 ? { retryable: false, code: 'INVALID_PARAMETERS' } : {}) });
    }
    const body = await res.json().catch(() => null) as Record<string, unknown> | null;
    if (!body || typeof body.analysis !== 'object' || body.analysis === null || typeof body.confidence !== 'number' || typeof body.processing_time !== 'number') {
      throw new InvalidOutputError(this.name, 'expected {analysis, confidence, processing_time}');
    }
    const result = { analysis: body.analysis, confidence: body.confidence, processing_time: body.processing_time };
    if (cache && key) await cache.set(key, result).catch((err: unknown) => this.o.onError?.(err, 'flask cache write'));
    return result;
  }

  /** One health check now; the adapter's status follows it. */
  async checkHealth(): Promise<ServiceStatus> {
    const t0 = performance.now();
    let ok: boolean;
    try {
      const res = await fetch(`${this.base}/health`, { headers: { 'x-api-key': this.o.apiKey }, signal: AbortSignal.timeout(this.o.healthTimeoutMs ?? 5_000) });
      await res.body?.cancel();
      ok = res.ok;
    } catch {
      ok = false;
    }
    const seconds = (performance.now() - t0) / 1000;
    this.lastCheck = new Date();
    this.lastLatency = Number((seconds * 1000).toFixed(2));
    this.state = ok ? 'up' : 'down';
    this.o.onHealthCheck?.(seconds, ok);
    return this.state;
  }

  /** Checks now and then every `healthIntervalMs` (0 = only now). */
  start(): void {
    const tick = () => { this.checkHealth().catch((err: unknown) => this.o.onError?.(err, 'flask health')); };
    tick();
    const every = this.o.healthIntervalMs ?? 30_000;
    if (every > 0) this.timer = setInterval(tick, every).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  status(): FlaskStatus {
    return { name: 'flask', url: this.url, status: this.state, last_check: this.lastCheck?.toISOString() ?? null, latency_ms: this.lastLatency, cache_hits: this.hits };
  }
}
