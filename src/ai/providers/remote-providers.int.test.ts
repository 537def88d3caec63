/**
 * The remote providers on the official SDKs against local stand-ins speaking the OpenAI and
 * Gemini wire protocols: what is sent (auth header, model, prompt, JSON mode), what is accepted
 * back, and how failures surface to the guard (status codes, invalid outputs, aborts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { geminiResponse, openAiCompletion, openAiError, startStandIn, type StandIn } from '../../../test/helpers/ai-standins.ts';
import { OpenAiProvider } from './openai-provider.ts';
import { GoogleProvider } from './google-provider.ts';
import { InvalidOutputError } from '../guarded-provider.ts';
import { isFinalFailure } from '../ai-provider.ts';

const BIAS = JSON.stringify({ bias_score: 0.4, findings: [{ text: 'crazy', category: 'ableist', severity: 'medium', suggestion: 'distressing' }] });

describe('OpenAiProvider (official openai SDK) against an OpenAI-compatible stand-in', () => {
  let s: StandIn;
  beforeAll(async () => { s = await startStandIn(() => openAiCompletion(BIAS)); });
  afterAll(async () => { await s.close(); });

  it('sends a JSON-mode chat completion with the key and model, and returns the parsed answer', async () => {
    const p = new OpenAiProvider({ apiKey: 'sk-test-key', baseUrl: `${s.url}/v1`, model: 'gpt-test' });
    const out = await p.analyze('bias_detection', { text: 'That client is crazy.', context: { session: 3 } });
    expect(out).toEqual(JSON.parse(BIAS));
    const r = s.received.at(-1)!;
    expect(r).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(r.headers.authorization).toBe('Bearer sk-test-key');
    expect(r.body).toMatchObject({ model: 'gpt-test', response_format: { type: 'json_object' }, temperature: 0 });
    expect(r.body.messages[0]).toMatchObject({ role: 'system' });
    expect(r.body.messages[0].content).toContain('bias_score');
    expect(r.body.messages[1].content).toContain('That client is crazy.');
    expect(r.body.messages[1].content).toContain('"session":3');
  });

  it('an answer without the task type\'s keys, or not JSON, is an invalid output; HTTP errors carry their status', async () => {
    const p = new OpenAiProvider({ apiKey: 'k', baseUrl: `${s.url}/v1`, model: 'm' });
    s.handle(() => openAiCompletion('{"label": "positive"}'));
    await expect(p.analyze('bias_detection', { text: 'x' })).rejects.toBeInstanceOf(InvalidOutputError);
    s.handle(() => openAiCompletion('Sure! Here is the analysis.'));
    await expect(p.analyze('bias_detection', { text: 'x' })).rejects.toThrow('not JSON');
    s.handle(() => openAiError(500));
    await expect(p.analyze('bias_detection', { text: 'x' })).rejects.toMatchObject({ status: 500 });
    const before = s.received.length;
    const err = await p.analyze('bias_detection', { text: '  ' }).catch((e: unknown) => e);
    expect(isFinalFailure(err)).toBe(true); // nothing to analyse: no fallback would do better
    expect(s.received.length).toBe(before);
  });

  it('stops its request when the signal aborts', async () => {
    const p = new OpenAiProvider({ apiKey: 'k', baseUrl: `${s.url}/v1`, model: 'm' });
    s.handle(() => 'hang');
    const ac = new AbortController();
    const pending = p.analyze('bias_detection', { text: 'x' }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toThrow(/abort/i);
  });
});

describe('GoogleProvider (official @google/genai SDK) against a Gemini stand-in', () => {
  let s: StandIn;
  beforeAll(async () => { s = await startStandIn(() => geminiResponse('{"label": "negative", "score": -0.6}')); });
  afterAll(async () => { await s.close(); });

  it('calls generateContent with the key, a system instruction and JSON output, and returns the parsed answer', async () => {
    const p = new GoogleProvider({ apiKey: 'g-test-key', baseUrl: s.url, model: 'gemini-test' });
    expect(await p.analyze('sentiment_analysis', { text: 'I could not sleep.' })).toEqual({ label: 'negative', score: -0.6 });
    const r = s.received.at(-1)!;
    expect(r.method).toBe('POST');
    expect(r.path).toMatch(/\/models\/gemini-test:generateContent$/);
    expect(r.headers['x-goog-api-key']).toBe('g-test-key');
    expect(JSON.stringify(r.body.contents)).toContain('I could not sleep.');
    expect(r.body.systemInstruction.parts[0].text).toContain('"score"');
    expect(r.body.generationConfig).toMatchObject({ responseMimeType: 'application/json', temperature: 0 });
  });

  it('an answer missing keys is an invalid output; HTTP errors surface', async () => {
    const p = new GoogleProvider({ apiKey: 'k', baseUrl: s.url, model: 'm' });
    s.handle(() => geminiResponse('{"mood": "sad"}'));
    await expect(p.analyze('sentiment_analysis', { text: 'x' })).rejects.toThrow('missing label, score');
    s.handle(() => ({ status: 503, body: { error: { code: 503, message: 'overloaded', status: 'UNAVAILABLE' } } }));
    await expect(p.analyze('sentiment_analysis', { text: 'x' })).rejects.toThrow();
  });
});
