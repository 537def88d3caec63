/**
 * The built-in agent's capabilities (SPEC §7.4) over real HTTP, on every reachable engine:
 * - it advertises only capabilities it has a handler for (every stage and known task type; a
 *   remote-only type such as `text_analysis` when a route gives it a provider), never
 *   `language_detection` or an unrouted `text_analysis`;
 * - a task needing a capability it does not advertise waits in the queue instead of being taken
 *   and failed;
 * - a task whose capabilities it holds but whose type it cannot run is given back (rejected →
 *   pending, no retry consumed, never dead-lettered) and an external agent gets it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../helpers/stores.ts';
import { registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

const LOCAL_CAPABILITIES = [
  'bias_detection', 'emotion_analysis', 'empathy_scoring', 'export', 'ingestion', 'pii_detection', 'processing', 'quality_assessment',
  'report_generation', 'sentiment_analysis', 'standardization', 'text_processing', 'therapeutic_recommendations', 'validation',
];
const LIMITS = { 'limits.default_per_min': 100_000, 'limits.task_create_per_min': 100_000, 'limits.register_per_min': 100_000 };

for (const engine of engines()) {
  describe(`built-in capabilities (${engine.name})`, () => {
    let tdb: TestDb;
    let t: TestServer;
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      tdb = await engine.open();
      t = await startTestServer(LIMITS, { db: tdb.db });
    });
    afterAll(async () => {
      await t?.stop();
      await tdb?.dispose(!passed);
    });

    const get = (path: string, token = t.adminToken) => t.api('GET', `/api/v1${path}`, { token });
    const post = (path: string, body: unknown, token = t.adminToken) => t.api('POST', `/api/v1${path}`, { token, body });

    it('advertises only the capabilities of task types it has a handler for', () => track(async () => {
      const agent = await get('/agents/builtin-local');
      expect(agent.status).toBe(200);
      expect([...agent.body.capabilities].sort()).toEqual(LOCAL_CAPABILITIES);
      expect((await get('/agents/discover?capabilities=language_detection')).body.agents).toEqual([]);
    }));

    it('leaves a task needing a capability it lacks in the queue instead of failing it', () => track(async () => {
      const created = await post('/tasks', { task_type: 'language_detection', required_capabilities: ['language_detection'], parameters: { text: 'bonjour' } });
      expect(created.status).toBe(201);
      await new Promise((r) => setTimeout(r, 1500));
      const task = await get(`/tasks/${created.body.task_id}`);
      expect(task.body).toMatchObject({ status: 'pending', dead_letter: false, assigned_agent: null });
      expect(task.body.history.map((h: { to_status: string }) => h.to_status)).toEqual(['pending']);
      // Once an agent that can do it appears, it gets it.
      const ld = await registerAgent(t, { agent_id: `ld-${engine.name}`, capabilities: ['language_detection'] });
      const claim = await post('/tasks/claim', { max: 1, wait_ms: 5000 }, ld.access_token);
      expect(claim.status).toBe(200);
      expect(claim.body.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([created.body.task_id]);
    }));

    it('gives back a task whose type it cannot run, for another agent, without consuming a retry', () => track(async () => {
      const created = await post('/tasks', { task_type: 'custom_mood_probe', required_capabilities: ['sentiment_analysis'], parameters: { text: 'I feel fine' }, max_retries: 0 });
      expect(created.status).toBe(201);
      const id = created.body.task_id as string;
      // The built-in takes it, and gives it back.
      const refused = await waitFor(async () => {
        const r = await get(`/tasks/${id}`);
        return (r.body.history as Array<{ from_status: string | null; to_status: string; agent_id: string | null; reason: string | null }>)
          .some((h) => h.to_status === 'pending' && h.agent_id === 'builtin-local' && (h.reason ?? '').startsWith('rejected')) ? r.body : null;
      }, 10_000, 50);
      expect(refused.status).not.toBe('failed');
      expect(refused.dead_letter).toBe(false);
      expect(refused.error).toBeNull();
      // A specialised agent gets it and completes it (no retry was used up: max_retries is 0).
      const remote = await registerAgent(t, { agent_id: `mood-${engine.name}`, capabilities: ['sentiment_analysis'] });
      const claim = await waitFor(async () => {
        const r = await post('/tasks/claim', { max: 1, wait_ms: 3000 }, remote.access_token);
        expect(r.status).toBe(200);
        return (r.body.tasks as Array<{ task_id: string; attempt: number }>).find((x) => x.task_id === id);
      }, 40_000, 0);
      const done = await post(`/tasks/${id}/complete`, { attempt: claim.attempt, result: { mood: 'fine' } }, remote.access_token);
      expect(done.status).toBe(200);
      const final = await get(`/tasks/${id}`);
      expect(final.body).toMatchObject({ status: 'completed', dead_letter: false, assigned_agent: remote.agent_id });
      const statuses = (final.body.history as Array<{ to_status: string }>).map((h) => h.to_status);
      expect(statuses).not.toContain('failed');
    }), 60_000);

    it('advertises a remote-only type when a route gives it a provider', () => track(async () => {
      const routed = await startTestServer({ ...LIMITS, 'ai.openai_api_key': 'sk-test-not-used', 'ai.openai_base_url': 'http://127.0.0.1:9/v1', 'ai.routes': { text_analysis: ['openai'] } });
      try {
        const agent = await routed.api('GET', '/api/v1/agents/builtin-local', { token: routed.adminToken });
        expect([...agent.body.capabilities].sort()).toEqual([...LOCAL_CAPABILITIES, 'text_analysis'].sort());
      } finally {
        await routed.stop();
      }
    }));
  });
}
