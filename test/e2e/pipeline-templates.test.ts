/**
 * Custom pipeline templates over real HTTP with the built-in agents, on every reachable engine:
 * - a template chaining known task types runs end to end: `sentiment_analysis` and
 *   `pii_detection` after `text_preprocessing` read its redacted conversations (SPEC §7.3);
 * - `GET /pipelines/templates` takes `sort=name|created_at:asc|desc` like the other lists (SPEC
 *   §2), keeps built-in first then by name without it, and refuses an unknown sort with 400.
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

    it('lists templates in the order asked: sort=name|created_at:asc|desc', () => track(async () => {
      // Created in the order m, z, a (created_at set apart explicitly: a clock tick is not guaranteed).
      const names = ['sort-tpl-m', 'sort-tpl-z', 'sort-tpl-a'];
      for (const [i, name] of names.entries()) {
        expect((await post('/pipelines/templates', { name, stages: [{ stage: 'only', task_type: 'sentiment_analysis' }] })).status).toBe(201);
        await tdb.db.query(`UPDATE pipeline_templates SET created_at = '2026-01-01T00:00:00Z'::timestamptz + make_interval(secs => $2) WHERE name = $1`, [name, i]);
      }
      const order = async (query: string) => {
        const r = await get(`/pipelines/templates?limit=1000${query}`);
        expect(r.status, query).toBe(200);
        expect(r.body.pagination).toMatchObject({ limit: 1000, offset: 0 });
        return (r.body.templates as Array<{ name: string; builtin: boolean }>);
      };
      const ours = (list: Array<{ name: string }>) => list.map((x) => x.name).filter((n) => n.startsWith('sort-tpl-'));
      const byDefault = await order('');
      expect(byDefault.slice(0, 2).map((x) => x.builtin)).toEqual([true, true]);
      expect(ours(byDefault)).toEqual(['sort-tpl-a', 'sort-tpl-m', 'sort-tpl-z']);
      expect(ours(await order('&sort=name:asc'))).toEqual(['sort-tpl-a', 'sort-tpl-m', 'sort-tpl-z']);
      expect(ours(await order('&sort=name:desc'))).toEqual(['sort-tpl-z', 'sort-tpl-m', 'sort-tpl-a']);
      expect(ours(await order('&sort=created_at:asc'))).toEqual(names);
      expect(ours(await order('&sort=created_at:desc'))).toEqual([...names].reverse());
      const all = (await order('&sort=name:asc')).map((x) => x.name);
      expect(all).toEqual([...all].sort());
      // Paged in the sorted order.
      const page = await get('/pipelines/templates?sort=name:desc&limit=1&offset=0');
      expect(page.body.templates.map((x: { name: string }) => x.name)).toEqual([[...all].sort().reverse()[0]]);
      expect(page.body.pagination).toMatchObject({ total: all.length, limit: 1, offset: 0, has_more: true });
      for (const bad of ['bogus', 'name', 'builtin:asc', 'created_at:up', 'name;DROP TABLE pipeline_templates:asc']) {
        const r = await get(`/pipelines/templates?sort=${encodeURIComponent(bad)}`);
        expect(r.status, bad).toBe(400);
        expect(r.body.error.code, bad).toBe('VALIDATION_ERROR');
      }
    }));
  });
}
