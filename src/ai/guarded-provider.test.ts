import { describe, expect, it } from 'vitest';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { GuardedProvider, InvalidOutputError, ProviderRateLimitedError, ProviderUnavailableError } from './guarded-provider.ts';
import type { BreakerState } from '../observability/index.ts';
import type { AiProvider, AnalyzeContext } from './ai-provider.ts';

/** An in-process provider whose next answers the test scripts: 'ok', 'fail', 'final', 'invalid' or 'hang'. */
function scripted(name = 'remote') {
  const script: string[] = [];
  let calls = 0;
  const signals: AbortSignal[] = [];
  const p: AiProvider = {
    name,
    supports: () => true,
    analyze: async (_t: string, _i: Record<string, unknown>, ctx?: AnalyzeContext) => {
      calls++;
      if (ctx?.signal) signals.push(ctx.signal);
      const next = script.shift() ?? 'ok';
      if (next === 'fail') throw Object.assign(new Error('upstream 500'), { status: 500 });
      if (next === 'final') throw Object.assign(new Error('bad input'), { retryable: false });
      if (next === 'invalid') throw new InvalidOutputError(name, 'not JSON');
      if (next === 'hang') return new Promise<never>(() => {});
      return { ok: true };
    },
  };
  return { p, script, signals, calls: () => calls };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GuardedProvider', () => {
  const base = { timeoutMs: 1_000, retries: 0, retryBaseMs: 1, breakerFailures: 3, halfOpenAfterMs: 60 };

  it('opens after N consecutive failures, refuses without calling, tries one call after the break, and closes only after 2 successes', async () => {
    const s = scripted();
    const states: BreakerState[] = [];
    const g = new GuardedProvider(s.p, { ...base, onBreakerState: (_n, st) => states.push(st) });
    s.script.push('fail', 'fail', 'fail');
    for (let i = 0; i < 3; i++) await expect(g.analyze('x', {})).rejects.toThrow('upstream 500');
    expect(g.circuit).toBe('open');
    await expect(g.analyze('x', {})).rejects.toBeInstanceOf(ProviderUnavailableError);
    expect(s.calls()).toBe(3);

    await sleep(80);
    await expect(g.analyze('x', {})).resolves.toEqual({ ok: true }); // the half-open trial
    expect(g.circuit).toBe('half_open'); // closed on probation: one more success needed
    s.script.push('fail');
    await expect(g.analyze('x', {})).rejects.toThrow('upstream 500');
    expect(g.circuit).toBe('open'); // a failure on probation opens it again at once

    await sleep(80);
    await g.analyze('x', {});
    await g.analyze('x', {});
    expect(g.circuit).toBe('closed');
    expect(states).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
    expect(g.status()).toMatchObject({ calls: 7, errors: 4, circuit: 'closed', last_error: { code: 'HTTP_500' } });
  });

  it('retries with backoff; a final failure is neither retried nor counted against the breaker; a fail-fast one is not retried', async () => {
    const s = scripted();
    const g = new GuardedProvider(s.p, { ...base, retries: 2 });
    s.script.push('fail', 'fail');
    await expect(g.analyze('x', {})).resolves.toEqual({ ok: true });
    expect(s.calls()).toBe(3);
    const failFast = Object.assign(new Error('known down'), { failFast: true });
    const down = new GuardedProvider({ name: 'down', supports: () => true, analyze: async () => { throw failFast; } }, { ...base, retries: 2 });
    await expect(down.analyze('x', {})).rejects.toBe(failFast);
    expect(down.status().calls).toBe(1); // a provider that knows it is down is not retried
    s.script.push('final', 'final', 'final', 'final');
    for (let i = 0; i < 4; i++) await expect(g.analyze('x', {})).rejects.toThrow('bad input');
    expect(s.calls()).toBe(7);
    expect(g.circuit).toBe('closed');
  });

  it('times a call out and aborts its signal; invalid outputs are counted', async () => {
    const s = scripted();
    const g = new GuardedProvider(s.p, { ...base, timeoutMs: 50, timeoutMsByTaskType: { slow: 200 } });
    s.script.push('hang');
    await expect(g.analyze('x', {})).rejects.toMatchObject({ code: 'TIMEOUT', message: 'remote timed out after 50 ms' });
    expect(s.signals[0]!.aborted).toBe(true);
    s.script.push('hang');
    await expect(g.analyze('slow', {})).rejects.toMatchObject({ code: 'TIMEOUT', message: 'remote timed out after 200 ms' });
    s.script.push('invalid');
    await expect(g.analyze('x', {})).rejects.toBeInstanceOf(InvalidOutputError);
    expect(g.status()).toMatchObject({ calls: 3, errors: 3, invalid_outputs: 1, last_error: { code: 'INVALID_OUTPUT' } });
  });

  it('sends nothing when the disclosure cannot be audited first', async () => {
    const s = scripted();
    const g = new GuardedProvider(s.p, base);
    const audited: string[] = [];
    await expect(g.analyze('x', {}, { beforeSend: async (name) => { audited.push(name); } })).resolves.toEqual({ ok: true });
    expect(audited).toEqual(['remote']);
    await expect(g.analyze('x', {}, { beforeSend: async () => { throw new Error('audit store down'); } })).rejects.toThrow('audit store down');
    expect(s.calls()).toBe(1);
  });

  it('refuses beyond its rate limit without calling the provider', async () => {
    const s = scripted();
    const g = new GuardedProvider(s.p, { ...base, limiter: new RateLimiterMemory({ points: 2, duration: 60 }) });
    await g.analyze('x', {});
    await g.analyze('x', {});
    await expect(g.analyze('x', {})).rejects.toBeInstanceOf(ProviderRateLimitedError);
    expect(s.calls()).toBe(2);
    expect(g.status().rate_limited).toBe(1);
  });
});
