/**
 * Pipelines end to end (SPEC §7) over real HTTP with the built-in agents: both built-in
 * templates run to completion on a fresh server, the export holds no identifier from the input,
 * and the REST surface (templates, list, progress, output formats, control, permissions) answers
 * as the contract says. Runs on PGlite and, when reachable, on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../helpers/stores.ts';
import { startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';
import { loadFixture, loadLabels } from '../fixtures/transcripts/load-fixture.ts';

const piiLabels = loadLabels<Record<string, unknown>>('pii-session.labels.json');
const IDENTIFIERS = ['EMAIL', 'PHONE', 'SSN'].flatMap((k) => piiLabels[k] as string[]);

for (const engine of engines()) {
  describe(`pipelines over HTTP (${engine.name})`, () => {
    let t: TestServer;
    let tdb: TestDb;
    let passed = true;

    beforeAll(async () => {
      tdb = await engine.open();
      t = await startTestServer({}, { db: tdb.db });
    });
    afterAll(async () => {
      await t?.stop();
      await tdb?.dispose(!passed);
    });

    const get = (path: string, token = t.adminToken) => t.api('GET', `/api/v1${path}`, { token });
    const post = (path: string, body: unknown, token = t.adminToken, headers?: Record<string, string>) => t.api('POST', `/api/v1${path}`, { token, body, headers });
    const finished = (id: string) => waitFor(async () => {
      const r = await get(`/pipelines/${id}`);
      return ['completed', 'partially_completed', 'failed', 'cancelled'].includes(r.body.status) ? r.body : null;
    }, 30_000, 50);

    it('runs techdeck end to end with the built-in agents; the export holds no email, phone or SSN', async () => {
      try {
        const created = await post('/pipelines', {
          name: 'pii session', input_data: { format: 'text', content: loadFixture('pii-session.txt') },
          context: { session_type: 'individual', patient_id: 'patient-42', session_id: 'session-7' },
        });
        expect(created.status).toBe(201);
        expect(created.body).toMatchObject({ status: 'running', template: 'techdeck' });
        expect(created.body.estimated_duration).toBeGreaterThan(0);
        const run = await finished(created.body.pipeline_id);
        expect(run.status).toBe('completed');
        expect(run.progress).toBe(1);
        expect(run.stages.map((s: { stage: string; status: string }) => `${s.stage}:${s.status}`)).toEqual(
          ['ingestion', 'standardization', 'validation', 'processing', 'quality_assessment', 'export'].map((s) => `${s}:completed`));
        const ends = run.stages.map((s: { completed_at: string }) => Date.parse(s.completed_at));
        expect([...ends].sort((a, b) => a - b)).toEqual(ends);
        for (const format of ['json', 'jsonl', 'csv'] as const) {
          const out = await get(`/pipelines/${created.body.pipeline_id}/output?format=${format}`);
          expect(out.status).toBe(200);
          expect(out.headers.get('content-type')).toContain({ json: 'application/json', jsonl: 'application/x-ndjson', csv: 'text/csv' }[format]);
          expect(out.text.length).toBeGreaterThan(100);
          for (const id of IDENTIFIERS) expect(out.text).not.toContain(id);
        }
        const csv = await get(`/pipelines/${created.body.pipeline_id}/output?format=csv`);
        expect(csv.text.split('\n')[0]).toMatch(/^conversation_id,turn_index,speaker,text/);
        const tasks = await get(`/tasks?pipeline_id=${created.body.pipeline_id}&limit=100`);
        expect(tasks.body.tasks).toHaveLength(6);
        const byPatient = await get('/pipelines?patient_id=patient-42');
        expect(byPatient.body.pipelines.map((p: { pipeline_id: string }) => p.pipeline_id)).toContain(created.body.pipeline_id);
        expect((await get('/pipelines?patient_id=someone-else')).body.pipelines).toHaveLength(0);
      } catch (e) {
        passed = false;
        throw e;
      }
    });
  });
}
