/**
 * Pipelines and data protection (SPEC §7, §9) end to end, on every reachable engine, against a
 * real server with the built-in agents:
 * - a stage that refuses its input names the record index and line only: a PHI canary used as
 *   the input's session / conversation id (or as a key of a standalone task's `inputs`) appears
 *   in no error — not in the pipeline's or its stages' errors over REST (admin or supervisor),
 *   not in the task's error, not in the `pipeline:failed` event (on the bus or a socket), not in
 *   the clear error columns;
 * - reads of a run (detail, output) count towards the bulk-read breach rule as task reads do
 *   (> 500 PHI records in 5 min → `phi_bulk_read`), and a masked read (no phi:read) is audited
 *   too;
 * - a tampered or moved pipeline ciphertext (context, output) fails closed as a task's does (500
 *   INTERNAL_ERROR, no details, no value) and is audited as a high-risk failed read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'socket.io-client';
import { CIPHERTEXT_PREFIX } from '../../src/security/index.ts';
import { engines, type TestDb } from '../helpers/stores.ts';
import { connectSocket, emitAck, startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';

const TAG = randomUUID().slice(0, 8);
const CANARY = `PATIENT-JANE-DOE-1987-${TAG}`;

for (const engine of engines()) {
  describe(`pipeline data protection (${engine.name})`, () => {
    let tdb: TestDb;
    let t: TestServer;
    let watcher: Socket | undefined;
    let supervisor: string;
    /** Socket fan-out to an admin (strips free text itself) and the domain events on the bus (webhooks, metrics … see them whole). */
    const events: Array<{ event: string; payload: unknown }> = [];
    const busEvents: Array<{ event: string; payload: unknown }> = [];
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      tdb = await engine.open();
      t = await startTestServer({ 'limits.default_per_min': 100_000, 'limits.task_create_per_min': 100_000 }, { db: tdb.db });
      supervisor = await userToken(t, 'supervisor');
      t.server.services.bus.onAny((event, payload) => { if (event.startsWith('pipeline:') || event.startsWith('task:')) busEvents.push({ event, payload }); });
      watcher = await connectSocket(t.wsUrl, t.adminToken, { setup: (s) => s.onAny((event: string, payload: unknown) => events.push({ event, payload })) });
      for (const topic of ['pipelines', 'tasks']) expect((await emitAck(watcher, 'subscribe', { topic })).ok).toBe(true);
    }, 60_000);
    afterAll(async () => {
      watcher?.close();
      await t?.stop();
      await tdb?.dispose(!passed);
    });

    const get = (path: string, token = t.adminToken) => t.api('GET', `/api/v1${path}`, { token });
    const post = (path: string, body: unknown, token = t.adminToken) => t.api('POST', `/api/v1${path}`, { token, body });
    const finished = (id: string) => waitFor(async () => {
      const r = await get(`/pipelines/${id}`);
      return ['completed', 'partially_completed', 'failed', 'cancelled'].includes(r.body.status) ? r.body : null;
    }, 30_000, 50);

    /** Runs a pipeline that must fail in `stage`; checks every place its error shows; returns the run's error message. */
    const failedRun = async (inputData: Record<string, unknown>, stage: string): Promise<string> => {
      const created = await post('/pipelines', { input_data: inputData, context: { session_type: 'individual' } });
      expect(created.status).toBe(201);
      const id = created.body.pipeline_id as string;
      const run = await finished(id);
      expect(run.status).toBe('failed');
      expect(run.error).toMatchObject({ code: 'VALIDATION_ERROR', stage });
      for (const token of [t.adminToken, supervisor]) {
        const detail = await get(`/pipelines/${id}`, token);
        expect(detail.status).toBe(200);
        expect(detail.body.error.message).toBe(run.error.message);
        expect(JSON.stringify(detail.body.error)).not.toContain(CANARY);
        expect(JSON.stringify(detail.body.stages)).not.toContain(CANARY);
        expect(detail.body.stages.find((s: { stage: string }) => s.stage === stage).error.code).toBe('VALIDATION_ERROR');
        const list = await get(`/pipelines?status=failed&limit=1000`, token);
        expect(list.text).not.toContain(CANARY);
        expect(list.body.pipelines.map((p: { pipeline_id: string }) => p.pipeline_id)).toContain(id);
      }
      // The stage's task: its error (the admin sees the parameters in full, so only the error is checked).
      const tasks = await get(`/tasks?pipeline_id=${id}&limit=100`);
      const failedTask = (tasks.body.tasks as Array<{ task_id: string; stage: string; status: string }>).find((x) => x.stage === stage)!;
      expect(failedTask.status).toBe('failed');
      const task = await get(`/tasks/${failedTask.task_id}`);
      expect(task.body.error.code).toBe('VALIDATION_ERROR');
      expect(JSON.stringify(task.body.error)).not.toContain(CANARY);
      expect(JSON.stringify(task.body.history)).not.toContain(CANARY);
      // The event, on the bus and on the socket.
      const failedEvent = busEvents.find((e) => e.event === 'pipeline:failed' && (e.payload as { pipeline_id: string }).pipeline_id === id);
      expect((failedEvent?.payload as { error: { message: string } } | undefined)?.error.message).toBe(run.error.message);
      expect(JSON.stringify(busEvents)).not.toContain(CANARY);
      const wired = await waitFor(() => events.find((e) => e.event === 'pipeline:failed' && (e.payload as { pipeline_id: string }).pipeline_id === id), 5000);
      expect(JSON.stringify(wired.payload)).not.toContain(CANARY);
      // The columns that are not encrypted.
      for (const [sql, what] of [
        ['SELECT error::text AS v FROM pipelines WHERE pipeline_id = $1', 'pipelines.error'],
        ['SELECT error::text AS v FROM pipeline_stages WHERE pipeline_id = $1', 'pipeline_stages.error'],
        ['SELECT error::text AS v FROM tasks WHERE pipeline_id = $1', 'tasks.error'],
        ['SELECT e.reason AS v FROM task_events e JOIN tasks x ON x.task_id = e.task_id WHERE x.pipeline_id = $1', 'task_events.reason'],
      ] as const) {
        const { rows } = await tdb.db.query<{ v: string | null }>(sql, [id]);
        for (const r of rows) expect(r.v ?? '', what).not.toContain(CANARY);
      }
      return run.error.message as string;
    };

    /** A small completed techdeck run. */
    const completedRun = async (): Promise<string> => {
      const created = await post('/pipelines', { input_data: { text: 'Therapist: How have you been?\nClient: Better, thank you.' }, context: { session_type: 'individual', patient_id: CANARY } });
      expect(created.status).toBe(201);
      expect((await finished(created.body.pipeline_id)).status).toBe('completed');
      return created.body.pipeline_id as string;
    };
    const principalOf = async (token: string) => `user:${(await get('/auth/me', token)).body.user.user_id as string}`;
    const bulkReaders = async () => {
      await t.server.security.phi.flush();
      const r = await get('/security/alerts?rule=phi_bulk_read&limit=1000');
      expect(r.status).toBe(200);
      return (r.body.alerts as Array<{ principal: string }>).map((a) => a.principal);
    };
    /** `n` GETs of `path`, 10 at a time, each answered 200. */
    const readMany = async (paths: string[], token: string) => {
      for (let i = 0; i < paths.length; i += 10) {
        const batch = await Promise.all(paths.slice(i, i + 10).map((p) => get(p, token)));
        for (const r of batch) expect(r.status).toBe(200);
      }
    };

    it('counts pipeline detail and output reads towards the bulk-read rule; audits masked reads too', () => track(async () => {
      const id = await completedRun();
      const reader = await userToken(t, 'admin');
      const principal = await principalOf(reader);
      // 510 PHI records read by one admin within the window: half details, half exports.
      await readMany(Array.from({ length: 510 }, (_, i) => (i % 2 === 0 ? `/pipelines/${id}` : `/pipelines/${id}/output?format=json`)), reader);
      expect(await waitFor(async () => (await bulkReaders()).includes(principal), 5000, 100)).toBe(true);

      // A supervisor's read is masked, and audited like a masked task read.
      const supPrincipal = await principalOf(supervisor);
      const masked = await get(`/pipelines/${id}`, supervisor);
      expect(masked.status).toBe(200);
      expect(masked.text).not.toContain(CANARY);
      const audited = await get(`/audit?resource_type=pipeline&resource_id=${id}&action=read&limit=1000`);
      const supReads = (audited.body.entries as Array<{ actor: { id: string; role: string }; fields: string[]; outcome: string }>).filter((e) => e.actor.role === 'supervisor');
      expect(supReads).toHaveLength(1);
      expect(supReads[0]).toMatchObject({ actor: { id: supPrincipal.slice('user:'.length) }, fields: ['context', 'output'], outcome: 'success' });
      expect(await bulkReaders()).not.toContain(supPrincipal);
    }), 120_000);

    it('fails closed on a tampered or moved pipeline ciphertext and audits the failed read', () => track(async () => {
      const a = await completedRun();
      const b = await completedRun();
      const column = async (id: string, col: 'output' | 'context') => (await tdb.db.query<{ v: string }>(`SELECT ${col} AS v FROM pipelines WHERE pipeline_id = $1`, [id])).rows[0]!.v;
      const original = { output: await column(a, 'output'), context: await column(a, 'context') };
      expect(original.output.startsWith(CIPHERTEXT_PREFIX)).toBe(true);
      const refused = async (path: string, requestId: string) => {
        const r = await t.api('GET', `/api/v1${path}`, { token: t.adminToken, headers: { 'x-request-id': requestId } });
        expect(r.status, path).toBe(500);
        expect(r.body.error, path).toEqual({ code: 'INTERNAL_ERROR', message: 'An internal error occurred.', request_id: requestId });
        expect(r.text).not.toContain(CANARY);
      };

      // b's (valid) output moved into a's row: bound to b's row, it must not decrypt there.
      await tdb.db.query('UPDATE pipelines SET output = $2 WHERE pipeline_id = $1', [a, await column(b, 'output')]);
      await refused(`/pipelines/${a}`, `pdp-moved-detail-${TAG}`);
      await refused(`/pipelines/${a}/output?format=json`, `pdp-moved-output-${TAG}`);
      await tdb.db.query('UPDATE pipelines SET output = $2 WHERE pipeline_id = $1', [a, original.output]);
      // One bit of a's own context flipped.
      const sep = original.context.lastIndexOf(':');
      const bytes = Buffer.from(original.context.slice(sep + 1), 'base64url');
      bytes[bytes.length >> 1]! ^= 0x01;
      await tdb.db.query('UPDATE pipelines SET context = $2 WHERE pipeline_id = $1', [a, `${original.context.slice(0, sep + 1)}${bytes.toString('base64url')}`]);
      await refused(`/pipelines/${a}`, `pdp-tampered-context-${TAG}`);
      await tdb.db.query('UPDATE pipelines SET context = $2 WHERE pipeline_id = $1', [a, original.context]);

      const failures = await get(`/audit?resource_type=pipeline&resource_id=${a}&outcome=failure&limit=100`);
      expect(failures.status).toBe(200);
      const entries = failures.body.entries as Array<{ request_id: string; fields: string[]; action: string; risk_level: string; data_classification: string; actor: { role: string } }>;
      expect(entries.map((e) => [e.request_id, e.fields]).sort()).toEqual([
        [`pdp-moved-detail-${TAG}`, ['output', 'decryption:authentication_failed']],
        [`pdp-moved-output-${TAG}`, ['output', 'decryption:authentication_failed']],
        [`pdp-tampered-context-${TAG}`, ['context', 'decryption:authentication_failed']],
      ]);
      for (const e of entries) expect(e).toMatchObject({ action: 'read', risk_level: 'high', data_classification: 'phi', actor: { role: 'admin' } });
      // Restored, a reads again; b was never touched.
      expect((await get(`/pipelines/${a}`)).body.context.patient_id).toBe(CANARY);
      expect((await get(`/pipelines/${a}/output?format=json`)).status).toBe(200);
      expect((await get(`/pipelines/${b}`)).status).toBe(200);
    }));

    it('a conversation with no text fails naming its record and line, never its session id', () => track(async () => {
      const message = await failedRun({ format: 'csv', content: `session_id,speaker,text\n${CANARY},client,\n` }, 'standardization');
      expect(message).toContain('record index 0 (line 2)');
      expect(message).not.toContain(CANARY);
      // Same for JSONL turn rows grouped by conversation_id.
      const jsonl = await failedRun({ format: 'jsonl', content: `${JSON.stringify({ conversation_id: CANARY, speaker: 'client', text: '  ' })}\n` }, 'standardization');
      expect(jsonl).toContain('record index 0 (line 1)');
    }));

    it('an over-long turn names the conversation by index, record and line', () => track(async () => {
      const content = JSON.stringify([
        { conversation_id: `${CANARY}-ok`, turns: [{ speaker: 'therapist', text: 'How are you?' }, { speaker: 'client', text: 'Fine.' }] },
        { conversation_id: CANARY, turns: [{ speaker: 'client', text: 'a'.repeat(50_001) }] },
      ], null, 1);
      const message = await failedRun({ format: 'json', content }, 'standardization');
      expect(message).toMatch(/conversation index 1 \(record index 1, line \d+\) turn 0 is 50001 characters/);
    }));

    it('standalone stage tasks do not echo the keys or conversation ids of their inputs', () => track(async () => {
      const cases = [
        { parameters: { inputs: { [CANARY]: 5 } }, expected: 'parameters.inputs entry 0 must be' },
        { parameters: { inputs: { standardization: { conversations: [{ conversation_id: CANARY, turns: [] }] } } }, expected: 'conversation index 0 has no turns' },
      ];
      for (const c of cases) {
        const created = await post('/tasks', { task_type: 'validation', parameters: c.parameters, max_retries: 0 });
        expect(created.status).toBe(201);
        const task = await waitFor(async () => {
          const r = await get(`/tasks/${created.body.task_id}`);
          return r.body.status === 'failed' ? r.body : null;
        }, 15_000, 50);
        expect(task.error.code).toBe('VALIDATION_ERROR');
        expect(task.error.message).toContain(c.expected);
        expect(JSON.stringify(task.error)).not.toContain(CANARY);
        const masked = await get(`/tasks/${created.body.task_id}`, supervisor);
        expect(JSON.stringify(masked.body.error)).not.toContain(CANARY);
        const { rows } = await tdb.db.query<{ v: string }>('SELECT error::text AS v FROM tasks WHERE task_id = $1', [created.body.task_id]);
        expect(rows[0]!.v).not.toContain(CANARY);
      }
      expect(JSON.stringify(events)).not.toContain(CANARY);
      expect(JSON.stringify(busEvents)).not.toContain(CANARY);
    }));

    it('a run is created with its audit entry or not at all: a failing audit write leaves no run and no stage task', () => track(async () => {
      const count = async (sql: string) => Number((await tdb.db.query<{ n: number }>(sql)).rows[0]!.n);
      const runs = () => count('SELECT count(*)::int AS n FROM pipelines');
      const tasks = () => count('SELECT count(*)::int AS n FROM tasks');
      const [runsBefore, tasksBefore] = [await runs(), await tasks()];
      // The store refuses the creation's audit entry (and only it).
      await tdb.db.exec(`CREATE FUNCTION refuse_pipeline_create_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.body LIKE '%"action":"create"%' AND NEW.body LIKE '%"resource_type":"pipeline"%' THEN RAISE EXCEPTION 'audit store refuses'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_pipeline_create_audit BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION refuse_pipeline_create_audit();`);
      try {
        const r = await t.api('POST', '/api/v1/pipelines', { token: t.adminToken, body: { template: 'techdeck', input_data: { format: 'text', content: 'Therapist: Hello.\nClient: Hi.' } } });
        expect(r.status).toBe(500);
        expect(await runs()).toBe(runsBefore);
        expect(await tasks()).toBe(tasksBefore);
      } finally {
        await tdb.db.exec('DROP TRIGGER refuse_pipeline_create_audit ON audit_pending; DROP FUNCTION refuse_pipeline_create_audit();');
      }
      const ok = await t.api('POST', '/api/v1/pipelines', { token: t.adminToken, body: { template: 'techdeck', input_data: { format: 'text', content: 'Therapist: Hello.\nClient: Hi.' } } });
      expect(ok.status).toBe(201);
      expect(await runs()).toBe(runsBefore + 1);
    }));
  });
}
