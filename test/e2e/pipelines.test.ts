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
        const audited = await get(`/audit?resource_type=pipeline&resource_id=${created.body.pipeline_id}&limit=100`);
        expect(audited.status).toBe(200);
        const actions = (audited.body.entries as Array<{ action: string }>).map((e) => e.action);
        expect(actions.filter((x) => x === 'export')).toHaveLength(4);
        expect(actions).toContain('create');
        expect(actions).toContain('read');
      } catch (e) {
        passed = false;
        throw e;
      }
    });

    it('runs mental_health_analysis end to end: both middle stages start after text_preprocessing', async () => {
      try {
        const created = await post('/pipelines', { template: 'mental_health_analysis', input_data: { text: loadFixture('pii-session.txt') }, context: { session_type: 'individual' } });
        expect(created.status).toBe(201);
        const run = await finished(created.body.pipeline_id);
        expect(run.status).toBe('completed');
        const at = Object.fromEntries(run.stages.map((s: { stage: string; started_at: string; completed_at: string }) => [s.stage, s]));
        for (const mid of ['bias_detection', 'emotion_analysis']) {
          expect(Date.parse(at[mid].started_at)).toBeGreaterThanOrEqual(Date.parse(at.text_preprocessing.completed_at));
          expect(Date.parse(at.empathy_scoring.started_at)).toBeGreaterThanOrEqual(Date.parse(at[mid].completed_at));
        }
        expect(run.output.report.conversation_count).toBe(1);
        for (const format of ['json', 'jsonl', 'csv']) {
          const out = await get(`/pipelines/${created.body.pipeline_id}/output?format=${format}`);
          expect(out.status).toBe(200);
          for (const id of IDENTIFIERS) expect(out.text).not.toContain(id);
        }
        const progress = await get(`/pipelines/${created.body.pipeline_id}/progress`);
        expect(progress.body).toMatchObject({ status: 'completed', progress: 1, completed_stages: 6, total_stages: 6 });
      } catch (e) {
        passed = false;
        throw e;
      }
    });

    it('templates, validation, permissions, idempotency and control over HTTP', async () => {
      try {
        const supervisor = await userToken(t, 'supervisor');
        const worker = await userToken(t, 'worker');
        const templates = await get('/pipelines/templates');
        expect(templates.status).toBe(200);
        expect(templates.body.templates.filter((x: { builtin: boolean }) => x.builtin).map((x: { name: string }) => x.name).sort()).toEqual(['mental_health_analysis', 'techdeck']);
        expect(templates.body.pagination).toMatchObject({ limit: 50, offset: 0 });

        const stuckStages = [{ stage: 'wait', task_type: 'wait_forever', required_capabilities: ['nobody_has_this'] }, { stage: 'after', task_type: 'export', depends_on: ['wait'] }];
        expect((await post('/pipelines/templates', { name: 'stuck', stages: stuckStages }, supervisor)).status).toBe(403);
        const tpl = await post('/pipelines/templates', { name: 'stuck', description: 'waits for an agent that never comes', stages: stuckStages });
        expect(tpl.status).toBe(201);
        expect((await post('/pipelines/templates', { name: 'stuck', stages: stuckStages })).body.error.code).toBe('CONFLICT');
        const cyc = await post('/pipelines/templates', { name: 'cyclic', stages: [{ stage: 'a', task_type: 'export', depends_on: ['b'] }, { stage: 'b', task_type: 'export', depends_on: ['a'] }] });
        expect(cyc.status).toBe(400);
        expect(cyc.body.error.code).toBe('VALIDATION_ERROR');
        expect(cyc.body.error.details.field_errors[0].message).toMatch(/cycle: a → b → a/);
        const unknownField = await post('/pipelines', { input_data: { text: 'hi' }, surprise: 1 });
        expect(unknownField.status).toBe(400);
        const badInput = await post('/pipelines', { input_data: { format: 'jsonl', content: loadFixture('malformed.jsonl') } });
        expect(badInput.status).toBe(400);
        expect(badInput.body.error.details.field_errors[0]).toMatchObject({ field: 'input_data.content' });

        expect((await get('/pipelines', worker)).status).toBe(403);
        expect((await get('/pipelines/00000000-0000-7000-8000-00000000beef')).body.error.code).toBe('PIPELINE_NOT_FOUND');
        expect((await get('/pipelines/not-a-uuid')).status).toBe(404);

        const key = { 'idempotency-key': `stuck-${engine.name}` };
        const body = { template: 'stuck', input_data: { text: 'Client: hello there' } };
        const first = await post('/pipelines', body, supervisor, key);
        expect(first.status).toBe(201);
        const replay = await post('/pipelines', body, supervisor, key);
        expect(replay.status).toBe(201);
        expect(replay.body.pipeline_id).toBe(first.body.pipeline_id);
        const id = first.body.pipeline_id as string;
        expect((await get(`/pipelines?template=stuck`)).body.pipelines).toHaveLength(1);

        const detail = await get(`/pipelines/${id}`, supervisor);
        expect(detail.body).toMatchObject({ status: 'running', current_stage: 'wait', progress: 0 });
        expect(detail.body.stages.map((s: { status: string }) => s.status)).toEqual(['ready', 'pending']);
        expect((await get(`/pipelines/${id}/output`)).status).toBe(409);
        expect((await post(`/pipelines/${id}/pause`, {}, supervisor)).status).toBe(403);
        const paused = await post(`/pipelines/${id}/pause`, {});
        expect(paused.body).toMatchObject({ status: 'paused' });
        expect((await post(`/pipelines/${id}/resume`, {})).body).toMatchObject({ status: 'running' });
        expect((await post(`/pipelines/${id}/stages/wait/retry`, {})).status).toBe(409);
        const cancelled = await post(`/pipelines/${id}/cancel`, { reason: 'no agent for this' });
        expect(cancelled.body).toMatchObject({ status: 'cancelled' });
        expect((await post(`/pipelines/${id}/cancel`, {})).status).toBe(409);
        const tasks = await get(`/tasks?pipeline_id=${id}`);
        expect(tasks.body.tasks.map((x: { status: string }) => x.status)).toEqual(['cancelled']);
      } catch (e) {
        passed = false;
        throw e;
      }
    });

    it('retries a failed stage over HTTP with a fresh task', async () => {
      try {
        const created = await post('/pipelines', { input_data: { text: loadFixture('biased-session.txt') }, parameters: { quality_thresholds: { bias_score_max: 0 } } });
        const run = await finished(created.body.pipeline_id);
        expect(run.status).toBe('failed');
        expect(run.error).toMatchObject({ code: 'QUALITY_GATE_FAILED', stage: 'quality_assessment' });
        const before = run.stages.find((s: { stage: string }) => s.stage === 'quality_assessment');
        const retried = await post(`/pipelines/${created.body.pipeline_id}/stages/quality_assessment/retry`, {});
        expect(retried.status).toBe(200);
        expect(retried.body.task_id).not.toBe(before.task_id);
        const again = await finished(created.body.pipeline_id);
        expect(again.status).toBe('failed');
        const after = again.stages.find((s: { stage: string }) => s.stage === 'quality_assessment');
        expect(after).toMatchObject({ runs: 2, previous_task_ids: [before.task_id], task_id: retried.body.task_id });
      } catch (e) {
        passed = false;
        throw e;
      }
    });
  });
}
