import { describe, expect, it } from 'vitest';
import { AiHub, type AiProvider } from './ai-provider.ts';

const provider = (name: string, behave: 'ok' | 'fail' | 'final', types = ['bias_detection']): AiProvider => ({
  name,
  supports: (t) => types.includes(t),
  analyze: async () => {
    if (behave === 'fail') throw Object.assign(new Error(`${name} down`), { retryable: true });
    if (behave === 'final') throw Object.assign(new Error('bad input'), { retryable: false });
    return { by: name };
  },
});

describe('AiHub', () => {
  it('routes per task type and falls back in order', async () => {
    const hub = new AiHub({ bias_detection: ['remote', 'local'] });
    hub.register(provider('remote', 'fail'));
    hub.register(provider('local', 'ok'));
    const out = await hub.analyze('bias_detection', {});
    expect(out).toMatchObject({ provider: 'local', result: { by: 'local' }, fallbacks_tried: ['remote'] });
  });
  it('does not fall back on a failure every provider would repeat', async () => {
    const hub = new AiHub({ bias_detection: ['remote', 'local'] });
    hub.register(provider('remote', 'final'));
    hub.register(provider('local', 'ok'));
    await expect(hub.analyze('bias_detection', {})).rejects.toThrow('bad input');
  });
  it('uses the default route and refuses unsupported types', async () => {
    const hub = new AiHub();
    hub.register(provider('local', 'ok', ['pii_detection']));
    expect((await hub.analyze('pii_detection', {})).provider).toBe('local');
    expect(hub.supports('export')).toBe(false);
    await expect(hub.analyze('export', {})).rejects.toThrow("No provider handles 'export'");
  });
});
