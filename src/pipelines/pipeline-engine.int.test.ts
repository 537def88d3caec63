/**
 * The pipeline engine against the real store (PGlite, and PostgreSQL when reachable), with the
 * real task service. The test acts as the agent: it leases a stage's task with a tiny SQL
 * helper (no dispatcher is built here, so nothing else takes the tasks), runs the real stage
 * handler on the task's real parameters and completes or fails the task through TaskService.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventBus, type DomainEventName } from '../core/index.ts';
import { BlindIndex, FieldCipher, KeyRing } from '../security/index.ts';
import { AgentRepository } from '../agents/index.ts';
import { TaskRepository, TaskService, noOutcomes } from '../tasks/index.ts';
import type { Principal } from '../auth/index.ts';
import type { Db } from '../store/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { loadFixture, loadLabels } from '../../test/fixtures/transcripts/load-fixture.ts';
import { LOCAL_STAGE_HANDLERS, StageFailure } from './stages/index.ts';
import { PipelineEngine } from './pipeline-engine.ts';
import { PipelineRepository } from './pipeline-repository.ts';
import { PipelineService } from './pipeline-service.ts';

const AGENT = 'test-agent';
const ADMIN: Principal = { type: 'user', id: '00000000-0000-7000-8000-000000000001', role: 'admin', name: 'admin' };
const SUPERVISOR: Principal = { type: 'user', id: '00000000-0000-7000-8000-000000000002', role: 'supervisor', name: 'sup' };
const piiLabels = loadLabels<Record<string, unknown>>('pii-session.labels.json');
const IDENTIFIERS = ['EMAIL', 'PHONE', 'SSN'].flatMap((k) => piiLabels[k] as string[]);
const TECHDECK = ['ingestion', 'standardization', 'validation', 'processing', 'quality_assessment', 'export'];
const TEXT = { format: 'text' as const, content: loadFixture('pii-session.txt') };

interface TaskInfo { task_id: string; task_type: string; status: string; attempt: number }

interface Harness {
  db: Db;
  bus: EventBus;
  tasks: TaskService;
  repo: PipelineRepository;
  engine: PipelineEngine;
  service: PipelineService;
  events: Array<{ name: DomainEventName; payload: Record<string, unknown> }>;
  listenerErrors: unknown[];
  newEngine(): PipelineEngine;
}

async function harness(db: Db): Promise<Harness> {
  const listenerErrors: unknown[] = [];
  const bus = new EventBus((err) => listenerErrors.push(err));
  const ring = KeyRing.fromMasterKey(randomBytes(32));
  const cipher = new FieldCipher(ring);
  const bidx = new BlindIndex(ring);
  const blindIndex = (p: 'patient_id' | 'session_id', v: string) => bidx.compute(p, v);
  const agents = new AgentRepository();
  await agents.insert(db, {
    agent_id: AGENT, name: 'test agent', type: 'pipeline-worker', capabilities: ['everything'], version: '1.0.0', endpoint_url: null, health_check_url: null,
    max_concurrent_tasks: 100, metadata: {}, tags: [], role: 'worker', builtin: false, api_key_hash: 'x',
  });
  const tasks = new TaskService(db, new TaskRepository(cipher), noOutcomes, bus, { retryBaseMs: 1, retryCapMs: 2 });
  const repo = new PipelineRepository(cipher);
  const newEngine = () => new PipelineEngine(db, repo, tasks, bus, { reconcileIntervalMs: 0, blindIndex });
  const engine = newEngine();
  await engine.start();
  const events: Harness['events'] = [];
  bus.onAny((name, payload) => { if (name.startsWith('pipeline:')) events.push({ name, payload: payload as Record<string, unknown> }); });
  return { db, bus, tasks, repo, engine, service: new PipelineService(db, repo, engine, blindIndex), events, listenerErrors, newEngine };
}

for (const eng of engines()) {
  describe(`pipeline engine (${eng.name})`, () => {
    let tdb: TestDb;
    let h: Harness;
    let passed = true;

    beforeAll(async () => {
      tdb = await eng.open();
      h = await harness(tdb.db);
    });
    afterAll(async () => {
      await h?.engine.stop();
      await tdb?.dispose(!passed);
    });

    const guard = (fn: () => Promise<void>) => async () => {
      try {
        await fn();
        expect(h.listenerErrors).toEqual([]);
      } catch (e) {
        passed = false;
        throw e;
      }
    };

    async function stageTasks(pipelineId: string, stage: string): Promise<TaskInfo[]> {
      const { rows } = await h.db.query<TaskInfo>('SELECT task_id, task_type, status, attempt FROM tasks WHERE pipeline_id = $1 AND stage = $2 ORDER BY created_at', [pipelineId, stage]);
      return rows;
    }

    async function liveTask(pipelineId: string, stage: string): Promise<TaskInfo> {
      const live = (await stageTasks(pipelineId, stage)).filter((t) => t.status === 'pending');
      expect(live, `one pending task for ${stage}`).toHaveLength(1);
      return live[0]!;
    }

    /** Leases the stage's pending task to the test agent; returns its id and attempt. */
    async function lease(pipelineId: string, stage: string): Promise<{ task_id: string; attempt: number; parameters: Record<string, unknown>; task_type: string }> {
      const t = await liveTask(pipelineId, stage);
      const { rows } = await h.db.query<{ attempt: number }>(
        `UPDATE tasks SET status = 'assigned', attempt = attempt + 1, assigned_agent = $2, assigned_at = now(), lease_expires_at = now() + interval '5 min'
         WHERE task_id = $1 RETURNING attempt`, [t.task_id, AGENT]);
      const row = await h.tasks.repo.get(h.db, t.task_id);
      return { task_id: t.task_id, attempt: rows[0]!.attempt, parameters: h.tasks.repo.openParameters(row!), task_type: t.task_type };
    }

    /** Acts as the agent for one stage: real handler on the real parameters, or a given output. */
    async function runStage(pipelineId: string, stage: string, output?: Record<string, unknown>): Promise<Record<string, unknown>> {
      const t = await lease(pipelineId, stage);
      const handler = LOCAL_STAGE_HANDLERS[t.task_type];
      const result = output ?? (await handler!({ task_type: t.task_type, parameters: t.parameters }));
      await h.tasks.complete(t.task_id, AGENT, t.attempt, result);
      await h.engine.idle();
      return result;
    }

    async function failStage(pipelineId: string, stage: string, retryable = false) {
      const t = await lease(pipelineId, stage);
      const r = await h.tasks.fail(t.task_id, AGENT, t.attempt, { code: 'BOOM', message: `${stage} broke`, retryable });
      await h.engine.idle();
      return r;
    }

    const detail = (id: string) => h.service.get(id, ADMIN);
    const statuses = async (id: string) => Object.fromEntries((await detail(id)).stages.map((s) => [s.stage, s.status]));

    it('techdeck runs strictly in order, one task per stage, and exports no identifiers', guard(async () => {
      const { pipeline_id: id, status, estimated_duration } = await h.service.create({ input_data: TEXT, context: { patient_id: 'p-1', session_id: 's-1' } }, ADMIN);
      expect(status).toBe('running');
      expect(estimated_duration).toBeGreaterThan(0);
      for (const [i, stage] of TECHDECK.entries()) {
        const { rows } = await h.db.query<{ stage: string }>('SELECT stage FROM tasks WHERE pipeline_id = $1 ORDER BY created_at', [id]);
        expect(rows.map((r) => r.stage)).toEqual(TECHDECK.slice(0, i + 1));
        const t = await lease(id, stage);
        if (i === 0) expect(t.parameters).toMatchObject({ input_data: TEXT, context: { patient_id: 'p-1' } });
        else expect(Object.keys(t.parameters.inputs as object)).toEqual([TECHDECK[i - 1]]);
        const p = await h.service.progress(id);
        expect(p.progress).toBeCloseTo(i / 6, 3);
        await h.tasks.progress(t.task_id, AGENT, t.attempt, 0.5);
        await h.engine.idle();
        expect((await h.service.progress(id)).progress).toBeCloseTo((i + 0.5) / 6, 3);
        expect((await statuses(id))[stage]).toBe('running');
        const result = await LOCAL_STAGE_HANDLERS[stage]!({ task_type: stage, parameters: t.parameters });
        await h.tasks.complete(t.task_id, AGENT, t.attempt, result);
        await h.engine.idle();
      }
      const run = await detail(id);
      expect(run.status).toBe('completed');
      expect(run.progress).toBe(1);
      expect(run.completed_at).not.toBeNull();
      const output = run.output as { formats: Record<string, string> };
      expect(Object.keys(output.formats).sort()).toEqual(['csv', 'json', 'jsonl']);
      for (const f of ['json', 'jsonl', 'csv'] as const) {
        const out = await h.service.output(id, f, ADMIN);
        expect(out.body).toBe(output.formats[f]);
        for (const x of IDENTIFIERS) expect(out.body).not.toContain(x);
        // An output is phi (SPEC §9), a built-in template's too: masked for a caller without phi:read.
        const masked = (await h.service.output(id, f, SUPERVISOR)).body;
        expect(masked).not.toBe(out.body);
        expect(masked).toMatch(/^.{2}\*+.{2}$/s);
        expect(masked.slice(0, 2) + masked.slice(-2)).toBe(out.body.slice(0, 2) + out.body.slice(-2));
      }
      const supView = (await h.service.get(id, SUPERVISOR)).output as { formats: Record<string, string> };
      expect(supView.formats.json).not.toBe(output.formats.json);
      expect(supView.formats.json).toMatch(/^.{2}\*+.{2}$/s);
      const names = h.events.filter((e) => e.payload.pipeline_id === id).map((e) => `${e.name}${e.payload.stage ? `:${e.payload.stage as string}` : ''}`);
      expect(names).toEqual(['pipeline:created', ...TECHDECK.flatMap((s) => [`pipeline:stage_started:${s}`, `pipeline:stage_completed:${s}`]), 'pipeline:completed']);
      // context is masked for a caller without phi:read
      expect((await h.service.get(id, SUPERVISOR)).context).toEqual({ patient_id: '***', session_id: '***' });
      expect((await h.service.list({ patient_id: 'p-1' })).pipelines.map((p) => p.pipeline_id)).toEqual([id]);
    }));

    it('mental_health_analysis creates both middle stages after text_preprocessing and joins them', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ template: 'mental_health_analysis', input_data: { text: loadFixture('empathic-session.txt') } }, ADMIN);
      await runStage(id, 'text_preprocessing');
      expect((await stageTasks(id, 'bias_detection')).length).toBe(1);
      expect((await stageTasks(id, 'emotion_analysis')).length).toBe(1);
      expect((await stageTasks(id, 'empathy_scoring')).length).toBe(0);
      expect((await h.service.progress(id)).current_stage).toBe('bias_detection');
      await runStage(id, 'emotion_analysis');
      expect((await stageTasks(id, 'empathy_scoring')).length).toBe(0);
      await runStage(id, 'bias_detection');
      const empathy = await lease(id, 'empathy_scoring');
      expect(Object.keys(empathy.parameters.inputs as object).sort()).toEqual(['bias_detection', 'emotion_analysis']);
      expect(empathy.parameters).not.toHaveProperty('input_data');
      await h.tasks.complete(empathy.task_id, AGENT, empathy.attempt, await LOCAL_STAGE_HANDLERS.empathy_scoring!({ task_type: 'empathy_scoring', parameters: empathy.parameters }));
      await h.engine.idle();
      await runStage(id, 'therapeutic_recommendations');
      const report = await runStage(id, 'report_generation');
      const run = await detail(id);
      expect(run.status).toBe('completed');
      expect(run.output).toEqual(report);
      expect(report).toHaveProperty('report');
      const formats = report.formats as Record<string, string>;
      for (const f of ['json', 'jsonl', 'csv'] as const) expect((await h.service.output(id, f, ADMIN)).body).toBe(formats[f]);
    }));

    it('runs a custom DAG template: roots get input_data, joins get every parent, several sinks give a map', guard(async () => {
      const cap = { required_capabilities: ['custom_work'] };
      const tpl = await h.service.createTemplate({
        name: `fan-${eng.name}`, description: 'fan out and in',
        stages: [
          { stage: 'split', task_type: 'split_text', ...cap, config: { parts: 2 } },
          { stage: 'left', task_type: 'count_words', depends_on: ['split'], ...cap },
          { stage: 'right', task_type: 'count_words', depends_on: ['split'], ...cap },
          { stage: 'sum', task_type: 'sum_up', depends_on: ['left', 'right'], ...cap },
          { stage: 'audit', task_type: 'sentiment_analysis', depends_on: ['split'] },
        ],
      }, ADMIN);
      expect(tpl.stages.map((s) => s.stage)).toEqual(['split', 'left', 'right', 'sum', 'audit']);
      expect((await h.service.templates(100, 0)).templates.map((t) => t.name)).toEqual(expect.arrayContaining(['techdeck', 'mental_health_analysis', `fan-${eng.name}`]));
      const { pipeline_id: id } = await h.service.create({ template: `fan-${eng.name}`, input_data: { text: 'one two three four' }, parameters: { shared: true, stage_config: { sum: { weight: 2 } } } }, ADMIN);
      const split = await lease(id, 'split');
      expect(split.parameters).toMatchObject({ input_data: { text: 'one two three four' }, config: { parts: 2, shared: true } });
      await h.tasks.complete(split.task_id, AGENT, split.attempt, { parts: ['one two', 'three four'] });
      await h.engine.idle();
      await runStage(id, 'left', { words: 2 });
      await runStage(id, 'right', { words: 2 });
      const sum = await lease(id, 'sum');
      expect(sum.parameters).toMatchObject({ inputs: { left: { words: 2 }, right: { words: 2 } }, config: { shared: true, weight: 2 } });
      await h.tasks.complete(sum.task_id, AGENT, sum.attempt, { total: 4 });
      await h.engine.idle();
      expect((await detail(id)).status).toBe('running');
      await runStage(id, 'audit', { label: 'neutral' });
      const run = await detail(id);
      expect(run.status).toBe('completed');
      expect(run.output).toEqual({ sum: { total: 4 }, audit: { label: 'neutral' } });
      await expect(h.service.output(id, 'csv', ADMIN)).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
      expect(JSON.parse((await h.service.output(id, 'json', ADMIN)).body)).toEqual({ sum: { total: 4 }, audit: { label: 'neutral' } });
    }));

    it('refuses invalid templates and inline stages with precise field errors', guard(async () => {
      const cases: Array<[unknown[], string, RegExp]> = [
        [[{ stage: 'a', depends_on: ['zz'], task_type: 'export' }], 'stages[0].depends_on', /unknown stage 'zz'/],
        [[{ stage: 'a', depends_on: ['a'], task_type: 'export' }], 'stages[0].depends_on', /'a' depends on itself/],
        [[{ stage: 'a', task_type: 'export' }, { stage: 'a', task_type: 'export' }], 'stages[1].stage', /duplicate stage 'a'/],
        [[{ stage: 'a', task_type: 'mystery' }], 'stages[0].required_capabilities', /'mystery'/],
        [[{ stage: 'a', depends_on: ['c'], task_type: 'export' }, { stage: 'b', depends_on: ['a'], task_type: 'export' }, { stage: 'c', depends_on: ['b'], task_type: 'export' }],
          'stages[0].depends_on', /cycle: a → b → c → a/],
      ];
      for (const [stages, field, message] of cases) {
        const err = await h.service.createTemplate({ name: 'bad', stages: stages as never }, ADMIN).then(() => null, (e: unknown) => e as { code: string; details: { field_errors: Array<{ field: string; message: string }> } });
        expect(err?.code).toBe('VALIDATION_ERROR');
        expect(err?.details.field_errors).toContainEqual({ field, message: expect.stringMatching(message) as unknown });
        const inline = await h.service.create({ stages: stages as never, input_data: { text: 'hi there' } }, ADMIN).then(() => null, (e: unknown) => e as { code: string });
        expect(inline?.code).toBe('VALIDATION_ERROR');
      }
      await expect(h.service.createTemplate({ name: 'techdeck', stages: [{ stage: 'x', task_type: 'export' }] }, ADMIN)).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(h.service.create({ template: 'nope', input_data: { text: 'x' } }, ADMIN)).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
      const bad = await h.service.create({ input_data: { format: 'jsonl', content: loadFixture('malformed.jsonl') } }, ADMIN).then(() => null, (e: unknown) => e as { details: { field_errors: Array<{ field: string; message: string }> } });
      expect(bad?.details.field_errors[0]).toMatchObject({ field: 'input_data.content', message: expect.stringMatching(/line 3/) as unknown });
      const { rows } = await h.db.query<{ n: number }>("SELECT count(*)::int AS n FROM pipelines WHERE template IN ('inline', 'nope')");
      expect(rows[0]!.n).toBe(0);
    }));

    it('error_strategy stop: a permanent failure fails the run and skips what is left; a retrying task does not', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ template: 'mental_health_analysis', input_data: { text: loadFixture('empathic-session.txt') } }, ADMIN);
      await runStage(id, 'text_preprocessing');
      const retry = await failStage(id, 'bias_detection', true);
      expect(retry.will_retry).toBe(true);
      expect((await detail(id)).status).toBe('running');
      expect((await statuses(id)).bias_detection).toBe('ready');
      await h.db.query("UPDATE tasks SET retry_at = now() WHERE task_id = $1", [retry.task_id]);
      await h.tasks.promoteRetries();
      await failStage(id, 'bias_detection', false);
      const run = await detail(id);
      expect(run.status).toBe('failed');
      expect(run.error).toMatchObject({ code: 'BOOM', stage: 'bias_detection' });
      expect(await statuses(id)).toMatchObject({ text_preprocessing: 'completed', bias_detection: 'failed', emotion_analysis: 'ready', empathy_scoring: 'skipped', report_generation: 'skipped' });
      // the parallel stage already running finishes and is recorded; nothing new starts
      await runStage(id, 'emotion_analysis');
      expect((await statuses(id)).emotion_analysis).toBe('completed');
      expect((await detail(id)).status).toBe('failed');
      expect(await stageTasks(id, 'empathy_scoring')).toHaveLength(0);
      const failed = h.events.filter((e) => e.name === 'pipeline:failed' && e.payload.pipeline_id === id);
      expect(failed).toHaveLength(1);
      // A code and stage the fan-out can pass on, apart from the message (free text, stripped there).
      expect(failed[0]!.payload).toMatchObject({ status: 'failed', error: { code: 'BOOM', stage: 'bias_detection', message: expect.stringContaining('bias_detection') } });
    }));

    it('error_strategy continue: dependents are skipped, independent branches go on → partially_completed', guard(async () => {
      const { pipeline_id: id } = await h.service.create({
        stages: [
          { stage: 'prep', task_type: 'text_preprocessing' },
          { stage: 'bias', task_type: 'bias_detection', depends_on: ['prep'] },
          { stage: 'bias_report', task_type: 'report_generation', depends_on: ['bias'] },
          { stage: 'emotion', task_type: 'emotion_analysis', depends_on: ['prep'] },
        ],
        error_strategy: 'continue', input_data: { text: loadFixture('empathic-session.txt') },
      }, ADMIN);
      await runStage(id, 'prep');
      await failStage(id, 'bias');
      expect(await statuses(id)).toMatchObject({ bias: 'failed', bias_report: 'skipped', emotion: 'ready' });
      expect((await detail(id)).status).toBe('running');
      const emotion = await runStage(id, 'emotion');
      const run = await detail(id);
      expect(run.status).toBe('partially_completed');
      expect(run.output).toEqual({ emotion });
      expect(run.error).toMatchObject({ code: 'STAGES_FAILED' });
      expect(run.progress).toBeCloseTo(2 / 4, 3);
    }));

    it('cancel cancels the live stage task, skips the rest and refuses a second cancel', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ input_data: TEXT }, ADMIN);
      await runStage(id, 'ingestion');
      const t = await lease(id, 'standardization');
      await h.service.cancel(id, 'operator said so');
      await h.engine.idle();
      const run = await detail(id);
      expect(run.status).toBe('cancelled');
      expect(await statuses(id)).toEqual({ ingestion: 'completed', standardization: 'skipped', validation: 'skipped', processing: 'skipped', quality_assessment: 'skipped', export: 'skipped' });
      expect((await stageTasks(id, 'standardization'))[0]!.status).toBe('cancelled');
      await expect(h.tasks.complete(t.task_id, AGENT, t.attempt, {})).rejects.toMatchObject({ code: 'INVALID_STATUS_TRANSITION' });
      await expect(h.service.cancel(id, 'again')).rejects.toMatchObject({ code: 'INVALID_STATUS_TRANSITION' });
      await expect(h.service.cancel('00000000-0000-7000-8000-00000000dead', 'x')).rejects.toMatchObject({ code: 'PIPELINE_NOT_FOUND' });
    }));

    it('pause stops new stage tasks, the running one finishes; resume creates the next', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ input_data: TEXT }, ADMIN);
      const t = await lease(id, 'ingestion');
      await h.service.pause(id);
      await h.service.pause(id);
      await h.tasks.complete(t.task_id, AGENT, t.attempt, await LOCAL_STAGE_HANDLERS.ingestion!({ task_type: 'ingestion', parameters: t.parameters }));
      await h.engine.idle();
      const paused = await h.service.progress(id);
      expect(paused).toMatchObject({ status: 'paused', completed_stages: 1, current_stage: null });
      expect(paused.progress).toBeCloseTo(1 / 6, 3);
      expect(await stageTasks(id, 'standardization')).toHaveLength(0);
      await h.engine.reconcile();
      expect(await stageTasks(id, 'standardization')).toHaveLength(0);
      await h.service.resume(id);
      expect((await detail(id)).status).toBe('running');
      expect(await stageTasks(id, 'standardization')).toHaveLength(1);
      await expect(h.service.engine.pause('not-a-uuid')).rejects.toMatchObject({ code: 'PIPELINE_NOT_FOUND' });
    }));

    it('retrying a failed stage creates a fresh task, un-skips its dependents and finishes the run', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ input_data: TEXT }, ADMIN);
      await runStage(id, 'ingestion');
      await runStage(id, 'standardization');
      const first = await liveTask(id, 'validation');
      await failStage(id, 'validation');
      expect((await detail(id)).status).toBe('failed');
      await expect(h.service.retryStage(id, 'ingestion')).rejects.toMatchObject({ code: 'INVALID_STATUS_TRANSITION' });
      await expect(h.service.retryStage(id, 'nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const { task_id } = await h.service.retryStage(id, 'validation');
      expect(task_id).not.toBe(first.task_id);
      const mid = await detail(id);
      expect(mid.status).toBe('running');
      expect(mid.error).toBeNull();
      const v = mid.stages.find((s) => s.stage === 'validation')!;
      expect(v).toMatchObject({ status: 'ready', task_id, runs: 2, previous_task_ids: [first.task_id], error: null });
      expect(mid.stages.filter((s) => s.status === 'skipped')).toHaveLength(0);
      for (const s of TECHDECK.slice(2)) await runStage(id, s);
      expect((await detail(id)).status).toBe('completed');
      expect(await stageTasks(id, 'ingestion')).toHaveLength(1);
    }));

    it('reconciles after a crash: stages completed while no engine ran advance once, nothing is redone', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ input_data: TEXT }, ADMIN);
      await h.engine.stop();
      await runStage(id, 'ingestion');
      expect((await statuses(id)).ingestion).toBe('ready');
      expect(await stageTasks(id, 'standardization')).toHaveLength(0);
      // two engines starting at once (two processes after a restart): each stage advances once
      const a = h.newEngine();
      const b = h.newEngine();
      await Promise.all([a.start(), b.start()]);
      h.engine = a;
      expect((await statuses(id)).ingestion).toBe('completed');
      expect(await stageTasks(id, 'standardization')).toHaveLength(1);
      await b.stop();
      for (const s of TECHDECK.slice(1)) await runStage(id, s);
      expect((await detail(id)).status).toBe('completed');
      for (const s of TECHDECK) expect(await stageTasks(id, s)).toHaveLength(1);
      const completed = h.events.filter((e) => e.name === 'pipeline:stage_completed' && e.payload.pipeline_id === id);
      expect(completed.map((e) => e.payload.stage)).toEqual(TECHDECK);
    }));

    it('a stage handler failure (quality gate) is a permanent stage failure with its reasons', guard(async () => {
      const { pipeline_id: id } = await h.service.create({ input_data: { text: loadFixture('biased-session.txt') }, parameters: { quality_thresholds: { bias_score_max: 0 } } }, ADMIN);
      for (const s of TECHDECK.slice(0, 4)) await runStage(id, s);
      const t = await lease(id, 'quality_assessment');
      const err = await LOCAL_STAGE_HANDLERS.quality_assessment!({ task_type: 'quality_assessment', parameters: t.parameters }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(StageFailure);
      const f = err as StageFailure;
      await h.tasks.fail(t.task_id, AGENT, t.attempt, { code: f.code, message: f.message, retryable: f.retryable });
      await h.engine.idle();
      const run = await detail(id);
      expect(run.status).toBe('failed');
      expect(run.stages.find((s) => s.stage === 'quality_assessment')!.error).toMatchObject({ code: 'QUALITY_GATE_FAILED' });
      expect(run.stages.find((s) => s.stage === 'export')!.status).toBe('skipped');
    }));

    it('lists with status/template filters and pagination', guard(async () => {
      const all = await h.service.list({ limit: 1000 });
      expect(all.total).toBeGreaterThanOrEqual(8);
      const page = await h.service.list({ limit: 2, offset: 1, sort: 'created_at:asc' });
      expect(page.pipelines.map((p) => p.pipeline_id)).toEqual([...all.pipelines].reverse().slice(1, 3).map((p) => p.pipeline_id));
      const mh = await h.service.list({ template: 'mental_health_analysis' });
      expect(mh.pipelines.length).toBeGreaterThanOrEqual(2);
      expect(mh.pipelines.every((p) => p.template === 'mental_health_analysis')).toBe(true);
      const cancelled = await h.service.list({ status: 'cancelled' });
      expect(cancelled.pipelines.length).toBeGreaterThanOrEqual(1);
      expect(cancelled.pipelines.every((p) => p.status === 'cancelled')).toBe(true);
      const done = await h.service.list({ status: 'completed' });
      expect(done.pipelines.every((p) => p.progress === 1)).toBe(true);
    }));
  });
}
