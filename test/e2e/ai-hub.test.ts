/**
 * The AI service hub end to end (SPEC §10): a server whose `openai`, `google` and `flask`
 * providers point at local stand-ins speaking their real wire protocols (the official SDKs run
 * unchanged), routed per task type with `local` behind them. Routing and fallback, the circuit
 * breaker over HTTP and in /metrics, the Flask cache (sealed in Redis when it is reachable) and
 * health-driven failover, discovery, permissions, validation and the PHI audit.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';
import { flaskHandler, geminiResponse, openAiCompletion, openAiError, startStandIn, type StandIn } from '../helpers/ai-standins.ts';

const REDIS_URL = process.env.MCP_TEST_REDIS_URL ?? '';
const PREFIX = `mcp-ai-${randomUUID().slice(0, 8)}:`;
const BIAS = { bias_score: 0.3, findings: [] };

describe(`AI hub over HTTP (${REDIS_URL ? 'Redis' : 'in-process'} coordination)`, () => {
  let t: TestServer;
  let openai: StandIn;
  let google: StandIn;
  let flask: StandIn;
  let redis: Redis | undefined;
  const flaskState = { up: true };

  beforeAll(async () => {
    openai = await startStandIn(() => openAiCompletion(JSON.stringify(BIAS)));
    google = await startStandIn(() => geminiResponse('{"label": "negative", "score": -0.5}'));
    flask = await startStandIn(flaskHandler(flaskState));
    t = await startTestServer({
      'agents.builtin': false,
      ...(REDIS_URL ? { 'coordination.redis_url': REDIS_URL, 'coordination.key_prefix': PREFIX } : {}),
      'ai.openai_api_key': 'sk-standin', 'ai.openai_base_url': `${openai.url}/v1`, 'ai.openai_model': 'gpt-standin',
      'ai.google_api_key': 'g-standin', 'ai.google_base_url': google.url,
      'integrations.flask_url': flask.url, 'integrations.flask_api_key': 'flask-key', 'integrations.flask_health_ms': 100,
      'ai.routes': { bias_detection: ['openai', 'local'], sentiment_analysis: ['google', 'local'], emotion_analysis: ['flask', 'local'] },
      'ai.retries': 0, 'ai.breaker_failures': 2, 'ai.breaker_half_open_ms': 400,
    });
    if (REDIS_URL) redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await t?.stop();
    if (redis) {
      const keys = await redis.keys(`${PREFIX}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    await Promise.all([openai?.close(), google?.close(), flask?.close()]);
  });

  const analyze = (body: unknown, token = t.adminToken) => t.api('POST', '/api/v1/ai/analyze', { token, body });

  it('routes each task type to its first provider, on the official SDKs\' wire protocols', async () => {
    const bias = await analyze({ task_type: 'bias_detection', input_data: { text: 'He is so crazy.', context: { session: 1 } } });
    expect(bias.status).toBe(200);
    expect(bias.body).toMatchObject({ provider: 'openai', result: BIAS, fallbacks_tried: [] });
    expect(bias.body.latency_ms).toBeGreaterThan(0);
    expect(openai.received.at(-1)).toMatchObject({ path: '/v1/chat/completions', body: { model: 'gpt-standin' } });
    const sentiment = await analyze({ task_type: 'sentiment_analysis', input_data: { text: 'I could not sleep.' } });
    expect(sentiment.body).toMatchObject({ provider: 'google', result: { label: 'negative', score: -0.5 } });
    // A type no route names goes to the default route: the local analysers.
    const pii = await analyze({ task_type: 'pii_detection', input_data: { text: 'Call me at 555-123-4567.' } });
    expect(pii.status).toBe(200);
    expect(pii.body.provider).toBe('local');
    // The caller may name the providers (in order).
    const local = await analyze({ task_type: 'bias_detection', input_data: { text: 'He is so crazy.' }, providers: ['local'] });
    expect(local.body.provider).toBe('local');
  });

  it('falls back on failure; the breaker opens after consecutive failures (no more calls, metrics, /ai/providers) and closes after it recovers', async () => {
    openai.handle(() => openAiError(500));
    const before = openai.received.length;
    for (let i = 0; i < 2; i++) {
      const r = await analyze({ task_type: 'bias_detection', input_data: { text: 'x y z' } });
      expect(r.body).toMatchObject({ provider: 'local', fallbacks_tried: ['openai'] });
    }
    expect(openai.received.length - before).toBe(2);
    const open = await analyze({ task_type: 'bias_detection', input_data: { text: 'x y z' } });
    expect(open.body).toMatchObject({ provider: 'local', fallbacks_tried: ['openai'] });
    expect(openai.received.length - before).toBe(2); // refused by the open breaker, not called

    const providers = await t.api('GET', '/api/v1/ai/providers', { token: t.adminToken });
    expect(providers.status).toBe(200);
    const o = providers.body.providers.find((p: { name: string }) => p.name === 'openai');
    expect(o).toMatchObject({ circuit: 'open', errors: 2, fallbacks: 3, last_error: { code: 'HTTP_500' } });
    expect(providers.body.routes.bias_detection).toEqual(['openai', 'local']);
    const metrics = await t.api('GET', '/metrics', { token: t.adminToken });
    expect(metrics.text).toMatch(/mcp_circuit_breaker_state\{service_name="openai"\} 2/);
    expect(metrics.text).toMatch(/mcp_circuit_breaker_state\{service_name="google"\} 0/);
    expect(metrics.text).toMatch(/mcp_external_service_duration_seconds_count\{service_name="openai",operation="analyze"\} [1-9]/);
    expect(metrics.text).toMatch(/mcp_ai_provider_events_total\{provider="openai",event="error"\} 2/);
    expect(metrics.text).toMatch(/mcp_ai_provider_events_total\{provider="openai",event="circuit_open"\} 1/);
    expect(metrics.text).toMatch(/mcp_ai_provider_events_total\{provider="openai",event="fallback"\} 3/);
    expect(metrics.text).toMatch(/mcp_ai_provider_events_total\{provider="openai",event="success"\} [1-9]/);

    // Only openai on the route, and it is open: 503.
    const refused = await analyze({ task_type: 'bias_detection', input_data: { text: 'x' }, providers: ['openai'] });
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'CIRCUIT_BREAKER_OPEN', details: { failures: [{ provider: 'openai', code: 'PROVIDER_UNAVAILABLE' }] } });

    openai.handle(() => openAiCompletion(JSON.stringify(BIAS)));
    await new Promise((r) => setTimeout(r, 450));
    for (let i = 0; i < 2; i++) expect((await analyze({ task_type: 'bias_detection', input_data: { text: 'ok' } })).body.provider).toBe('openai');
    const after = await t.api('GET', '/api/v1/ai/providers', { token: t.adminToken });
    expect(after.body.providers.find((p: { name: string }) => p.name === 'openai').circuit).toBe('closed');
  });

  it('every provider failing answers 502 naming each one\'s error; an invalid output counts as a failure', async () => {
    google.handle(() => geminiResponse('not json at all'));
    const r = await analyze({ task_type: 'sentiment_analysis', input_data: { text: 'fine' }, providers: ['google'] });
    expect(r.status).toBe(502);
    expect(r.body.error).toMatchObject({ code: 'EXTERNAL_SERVICE_ERROR', details: { failures: [{ provider: 'google', code: 'INVALID_OUTPUT' }] } });
    const providers = await t.api('GET', '/api/v1/ai/providers', { token: t.adminToken });
    expect(providers.body.providers.find((p: { name: string }) => p.name === 'google').invalid_outputs).toBe(1);
    google.handle(() => geminiResponse('{"label": "negative", "score": -0.5}'));
  });

  it('caches Flask results (sealed, under a keyed hash), lists the service in discovery, and fails over at once while it is down', async () => {
    const canary = `PHI-CANARY-${randomUUID()}`;
    const body = { task_type: 'emotion_analysis', input_data: { text: `I told ${canary} everything.`, context: { turn: 1 } } };
    const before = flask.received.filter((r) => r.path === '/analyze').length;
    const first = await analyze(body);
    expect(first.body).toMatchObject({ provider: 'flask', result: { analysis: { emotions: { sadness: 0.7 } }, confidence: 0.82 } });
    const second = await analyze(body);
    expect(second.body.result).toEqual(first.body.result);
    expect(flask.received.filter((r) => r.path === '/analyze').length - before).toBe(1);
    expect(flask.received.find((r) => r.path === '/analyze')!.headers['x-api-key']).toBe('flask-key');
    if (redis) {
      const keys = await redis.keys(`${PREFIX}*ai:flask:*`);
      expect(keys.length).toBeGreaterThanOrEqual(1);
      for (const k of keys) {
        expect(k).not.toContain(canary);
        const v = await redis.get(k);
        expect(v).not.toContain(canary);
        expect(v).not.toContain('sadness'); // the answer is PHI too: sealed
      }
    }

    const discovery = await t.api('GET', '/api/v1/discovery/services', { token: t.adminToken });
    expect(discovery.body.services).toEqual([expect.objectContaining({ name: 'flask', url: flask.url, status: 'up', routed: true, circuit: 'closed', cache_hits: 1 })]);

    flaskState.up = false;
    await waitFor(async () => (await t.api('GET', '/api/v1/discovery/services', { token: t.adminToken })).body.services[0].status === 'down');
    const health = await t.api('GET', '/api/v1/health', { token: t.adminToken });
    expect(health.body.status).toBe('degraded');
    expect(health.body.checks.external_services).toMatchObject({ status: 'degraded', services: [{ name: 'flask', status: 'down' }] });
    const calls = flask.received.filter((r) => r.path === '/analyze').length;
    const failover = await analyze({ task_type: 'emotion_analysis', input_data: { text: 'Something new.' } });
    expect(failover.body).toMatchObject({ provider: 'local', fallbacks_tried: ['flask'] });
    expect(flask.received.filter((r) => r.path === '/analyze').length).toBe(calls); // refused without a call
    flaskState.up = true;
    await waitFor(async () => (await t.api('GET', '/api/v1/health', { token: t.adminToken })).body.status === 'healthy');
  });

  it('needs task:create, validates its body, refuses task types no provider serves, and audits each analysis as PHI access', async () => {
    const worker = await userToken(t, 'worker');
    expect((await analyze({ task_type: 'bias_detection', input_data: { text: 'x' } }, worker)).status).toBe(403);
    expect((await t.api('GET', '/api/v1/ai/providers', { token: worker })).status).toBe(200);
    const missing = await analyze({ task_type: 'bias_detection', input_data: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('VALIDATION_ERROR');
    expect((await analyze({ task_type: 'bias_detection', input_data: { text: 'x' }, providers: ['nope'] })).status).toBe(400);
    const unknown = await analyze({ task_type: 'horoscope', input_data: { text: 'x' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('INVALID_PARAMETERS');

    const exports = await t.api('GET', '/api/v1/audit?action=export&resource_type=ai_provider&limit=100', { token: t.adminToken });
    const sentTo = new Set((exports.body.entries as Array<{ resource_id: string }>).map((e) => e.resource_id));
    expect(sentTo).toEqual(new Set(['openai', 'google', 'flask'])); // never 'local': it does not leave the server
    const audit = await t.api('GET', '/api/v1/audit?action=execute&resource_type=ai_analysis&limit=100', { token: t.adminToken });
    expect(audit.status).toBe(200);
    const entries = audit.body.entries as Array<{ resource_id: string; data_classification: string; fields: string[]; outcome: string }>;
    expect(entries.length).toBeGreaterThanOrEqual(10);
    expect(entries.every((e) => e.data_classification === 'phi' && e.fields[0] === 'input_data')).toBe(true);
    expect(entries.some((e) => e.resource_id === 'sentiment_analysis' && e.outcome === 'failure')).toBe(true);
  });
});

describe('built-in agents on the AI routes', () => {
  let t: TestServer;
  let openai: StandIn;
  beforeAll(async () => {
    openai = await startStandIn(() => openAiCompletion(JSON.stringify(BIAS)));
    t = await startTestServer({
      'ai.openai_api_key': 'sk-standin', 'ai.openai_base_url': `${openai.url}/v1`,
      'ai.routes': { bias_detection: ['openai', 'local'] }, 'ai.retries': 0,
    });
  });
  afterAll(async () => {
    await t?.stop();
    await openai?.close();
  });

  const finished = async (path: string) => waitFor(async () => {
    const r = await t.api('GET', path, { token: t.adminToken });
    return ['completed', 'failed'].includes(r.body.status) ? r.body : null;
  }, 20_000);

  it('run a standalone task on its route (openai, then local when it fails), while pipeline stages stay on local', async () => {
    const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'bias_detection', parameters: { text: 'She is so crazy.' } } });
    expect(created.status).toBe(201);
    const done = await finished(`/api/v1/tasks/${created.body.task_id}`);
    expect(done).toMatchObject({ status: 'completed', result: BIAS });
    expect(openai.received.at(-1)!.body.messages[1].content).toContain('She is so crazy.');
    // The parameters left the server for openai: audited as a disclosure of that task.
    const disclosed = await t.api('GET', `/api/v1/audit?action=export&resource_type=task&resource_id=${created.body.task_id}`, { token: t.adminToken });
    expect(disclosed.body.entries).toEqual([expect.objectContaining({ fields: ['parameters', 'sent_to:openai'], data_classification: 'phi', actor: expect.objectContaining({ type: 'agent', id: 'builtin-local' }) })]);

    openai.handle(() => openAiError(500));
    const fallback = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'bias_detection', parameters: { text: 'She is so crazy.' } } });
    const local = await finished(`/api/v1/tasks/${fallback.body.task_id}`);
    expect(local.status).toBe('completed');
    expect(local.result).not.toEqual(BIAS); // the local analyser's answer
    expect(local.result).toHaveProperty('score');

    const calls = openai.received.length;
    const run = await t.api('POST', '/api/v1/pipelines', { token: t.adminToken, body: { template: 'mental_health_analysis', input_data: { text: 'Therapist: How are you?\nClient: My sister says I am crazy.' } } });
    expect(run.status).toBe(201);
    const pipeline = await waitFor(async () => {
      const r = await t.api('GET', `/api/v1/pipelines/${run.body.pipeline_id}`, { token: t.adminToken });
      return ['completed', 'failed'].includes(r.body.status) ? r.body : null;
    }, 30_000);
    expect(pipeline.status).toBe('completed');
    expect(openai.received.length).toBe(calls); // its bias_detection stage ran on local
  });
});
