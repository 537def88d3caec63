/**
 * Custom pipeline templates over real HTTP with the built-in agents, on every reachable engine:
 * - a template chaining known task types runs end to end: `sentiment_analysis` and
 *   `pii_detection` after `text_preprocessing` read its redacted conversations (SPEC §7.3);
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../helpers/stores.ts';
import { startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

const SESSION = 'Therapist: How have you been this week?\nClient: Awful. I feel hopeless, call me at 555-214-8890.\nTherapist: That sounds really hard; thank you for telling me.';

for (const engine of engines()) {
  describe(`custom pipeline templates (${engine.name})`, () => {
    let tdb: TestDb;
    let t: TestServer;
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      tdb = await engine.open();
      t = await startTestServer({ 'limits.default_per_min': 100_000, 'limits.task_create_per_min': 100_000 }, { db: tdb.db });
    });
    afterAll(async () => {
      await t?.stop();
      await tdb?.dispose(!passed);
    });

    const get = (path: string) => t.api('GET', `/api/v1${path}`, { token: t.adminToken });
    const post = (path: string, body: unknown) => t.api('POST', `/api/v1${path}`, { token: t.adminToken, body });
    const finished = (id: string) => waitFor(async () => {
      const r = await get(`/pipelines/${id}`);
      return ['completed', 'partially_completed', 'failed', 'cancelled'].includes(r.body.status) ? r.body : null;
    }, 30_000, 50);

    it('runs prep(text_preprocessing) → sent(sentiment_analysis), pii(pii_detection) to completion', () => track(async () => {
      const tpl = await post('/pipelines/templates', {
        name: `prep-sent-pii-${engine.name}`,
        stages: [
          { stage: 'prep', task_type: 'text_preprocessing' },
          { stage: 'sent', task_type: 'sentiment_analysis', depends_on: ['prep'] },
          { stage: 'pii', task_type: 'pii_detection', depends_on: ['prep'] },
        ],
      });
      expect(tpl.status).toBe(201);
      const created = await post('/pipelines', { template: `prep-sent-pii-${engine.name}`, input_data: { text: SESSION } });
      expect(created.status).toBe(201);
      const run = await finished(created.body.pipeline_id);
      expect(run.stages.map((s: { stage: string; status: string; error: unknown }) => [s.stage, s.status, s.error])).toEqual([
        ['prep', 'completed', null], ['sent', 'completed', null], ['pii', 'completed', null],
      ]);
      expect(run.status).toBe('completed');
      const sent = run.output.sent.conversations[0];
      expect(sent.turns).toHaveLength(3);
      expect(sent.by_speaker.client.mean).toBeLessThan(0);
      expect(run.output.pii).toMatchObject({ redacted: true });
      expect(run.output.pii.conversations).toHaveLength(1);
      const out = await get(`/pipelines/${created.body.pipeline_id}/output?format=json`);
      expect(out.status).toBe(200);
      expect(out.text).not.toContain('214-8890');
    }));
  });
}
