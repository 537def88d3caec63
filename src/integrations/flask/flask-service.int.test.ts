/**
 * The Flask adapter against a local stand-in speaking the service's protocol: request shape and
 * API key, answer validation, the cache (keyed, so the same text is analysed once), health checks
 * (down → refused at once, so the hub fails over), bad input as a final failure.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flaskHandler, startStandIn, type StandIn } from '../../../test/helpers/ai-standins.ts';
import { FlaskService, ServiceDownError } from './flask-service.ts';
import { InvalidOutputError, isFinalFailure } from '../../ai/index.ts';

describe('FlaskService against a Flask stand-in', () => {
  const state = { up: true };
  let s: StandIn;
  beforeAll(async () => { s = await startStandIn(flaskHandler(state)); });
  afterAll(async () => { await s.close(); });

  it('posts {text, context, metadata} with X-API-Key and returns {analysis, confidence, processing_time}', async () => {
    const f = new FlaskService({ baseUrl: s.url, apiKey: 'flask-key' });
    const out = await f.analyze('emotion_analysis', { text: 'I feel lost.', context: { turn: 2 } }, { requestId: 'req-1' });
    expect(out).toEqual({ analysis: { emotions: { sadness: 0.7 } }, confidence: 0.82, processing_time: 0.05 });
    const r = s.received.at(-1)!;
    expect(r).toMatchObject({ method: 'POST', path: '/analyze', body: { text: 'I feel lost.', context: { turn: 2 }, metadata: { request_id: 'req-1' } } });
    expect(r.headers['x-api-key']).toBe('flask-key');
    expect(Date.parse(r.body.metadata.timestamp)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('serves a repeated text + context from the cache under a keyed hash of it', async () => {
    const store = new Map<string, Record<string, unknown>>();
    const f = new FlaskService({
      baseUrl: s.url, apiKey: 'k',
      cache: { key: (m) => createHash('sha256').update(m).digest('hex'), get: async (k) => store.get(k) ?? null, set: async (k, v) => { store.set(k, v); } },
    });
    const before = s.received.length;
    const a = await f.analyze('emotion_analysis', { text: 'same words', context: { a: 1 } });
    const b = await f.analyze('emotion_analysis', { text: 'same words', context: { a: 1 } });
    await f.analyze('emotion_analysis', { text: 'same words', context: { a: 2 } });
    expect(b).toEqual(a);
    expect(s.received.length - before).toBe(2);
    expect([...store.keys()].some((k) => k.includes('same words'))).toBe(false);
    expect(f.status().cache_hits).toBe(1);
  });

  it('after a failed health check it refuses at once (retryable: the hub fails over), and recovers with the service', async () => {
    const f = new FlaskService({ baseUrl: s.url, apiKey: 'k', healthIntervalMs: 0 });
    state.up = false;
    expect(await f.checkHealth()).toBe('down');
    const before = s.received.length;
    const err = await f.analyze('emotion_analysis', { text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceDownError);
    expect(isFinalFailure(err)).toBe(false);
    expect(s.received.length).toBe(before);
    expect(f.status()).toMatchObject({ status: 'down', url: s.url });
    state.up = true;
    expect(await f.checkHealth()).toBe('up');
    await expect(f.analyze('emotion_analysis', { text: 'x' })).resolves.toMatchObject({ confidence: 0.82 });
  });

  it('a malformed answer is an invalid output; 400 is a final failure; other statuses are retryable', async () => {
    const f = new FlaskService({ baseUrl: s.url, apiKey: 'k' });
    s.handle(() => ({ status: 200, body: { result: 'ok' } }));
    await expect(f.analyze('emotion_analysis', { text: 'x' })).rejects.toBeInstanceOf(InvalidOutputError);
    s.handle(() => ({ status: 400, body: { error: 'text too long' } }));
    expect(isFinalFailure(await f.analyze('emotion_analysis', { text: 'x' }).catch((e: unknown) => e))).toBe(true);
    s.handle(() => ({ status: 500, body: { error: 'boom' } }));
    const err = await f.analyze('emotion_analysis', { text: 'x' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 500 });
    expect(isFinalFailure(err)).toBe(false);
    s.handle(flaskHandler(state));
  });
});
