/**
 * Data protection end to end (SPEC §9), on every reachable engine, against a real server:
 * - PHI reads of tasks are audited (in the read's transaction: an audit store that refuses the
 *   write fails the read), masked for callers without phi:read, full for the assigned agent;
 *   deliveries to agents are audited in batches; the built-in agent is exempt from the bulk-read
 *   breach rule, another agent is not;
 * - a tampered or moved ciphertext fails closed (500 INTERNAL_ERROR, no details, no value) and is
 *   audited as a high-risk failure;
 * - a scripted session with a unique PHI canary (task parameters and results, pipeline input and
 *   context, a patient_id) leaves the canary nowhere in clear in ANY column of ANY table, in the
 *   captured logs, in error bodies or in Socket.IO fan-out payloads;
 * - field-key rotation under live traffic loses nothing and leaves every sealed value under the
 *   new key; a restart reads the persisted key version; a second process sharing the store picks
 *   up a rotation; signing-key rotation keeps live tokens valid.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Socket } from 'socket.io-client';
import { decodeProtectedHeader } from 'jose';
import { loadConfig } from '../../src/config/index.ts';
import { startServer } from '../../src/compose.ts';
import { createLogger } from '../../src/observability/index.ts';
import { CIPHERTEXT_PREFIX, keyIdOf, maskPhi, rotateKeys } from '../../src/security/index.ts';
import { engines, type TestDb } from '../helpers/stores.ts';
import { ADMIN_PASSWORD, connectSocket, emitAck, makeApi, registerAgent, userToken, waitFor, type ApiResponse, type TestServer } from '../helpers/server.ts';

class Capture extends Writable {
  readonly chunks: string[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
}

const MASTER_KEY = randomBytes(32).toString('base64');
const PEPPER = randomBytes(16).toString('hex');
const TAG = randomUUID().slice(0, 8);
const CANARY = `PHI-CANARY-${TAG}`;
const CANARY_TEXT = `Jane Roe ${CANARY} DOB 1971-04-02`;
const CANARY_PATIENT = `canary-patient-${TAG}`;
const CANARY_SESSION = `canary-session-${TAG}`;
const CANARY_RESULT = `RESULT-CANARY-${TAG}`;
const CANARIES = [CANARY, CANARY_PATIENT, CANARY_SESSION, CANARY_RESULT];

interface AuditRow {
  audit_id: string; action: string; outcome: string; resource_type: string; resource_id: string | null; resource_ids?: string[]; fields: string[]; data_classification: string | null;
  actor: { type: string; id: string | null; role: string | null }; request_id: string | null; risk_level: string;
}

async function start(store: TestDb, capture: Capture, overrides: Record<string, unknown> = {}): Promise<TestServer> {
  const config = loadConfig({
    env: {},
    overrides: {
      'server.port': 0, 'server.ws_port': 0, 'server.host': '127.0.0.1', 'store.data_dir': ':memory:', 'log.level': 'trace',
      'auth.admin_password': ADMIN_PASSWORD, 'tasks.sweep_interval_ms': 100, 'security.master_key': MASTER_KEY, 'security.key_poll_ms': 200,
      'auth.password_pepper': PEPPER, 'limits.task_create_per_min': 100_000, 'limits.default_per_min': 100_000,
      ...overrides,
    },
  });
  const server = await startServer({ config, db: store.db, logger: createLogger({ level: 'trace', destination: capture }) });
  const api = makeApi(server.url);
  const login = await api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  if (login.status !== 200) throw new Error(`admin login failed: ${login.status}`);
  return { server, url: server.url, wsUrl: `http://127.0.0.1:${server.wsPort}`, api, adminToken: login.body.access_token, stop: () => server.stop() };
}

for (const engine of engines()) {
  describe(`data protection on ${engine.name}`, () => {
    let store: TestDb;
    let t: TestServer;
    const capture = new Capture();
    const errorBodies: ApiResponse[] = [];
    const socketPayloads: unknown[] = [];
    let watcher: Socket | undefined;
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      store = await engine.open();
      t = await start(store, capture);
      // An admin watching every fan-out topic: these payloads must never carry PHI.
      watcher = await connectSocket(t.wsUrl, t.adminToken, { setup: (s) => s.onAny((event: string, payload: unknown) => socketPayloads.push({ event, payload })) });
      for (const topic of ['tasks', 'pipelines', 'agents', 'system']) expect((await emitAck(watcher, 'subscribe', { topic })).ok).toBe(true);
    }, 60_000);
    afterAll(async () => {
      watcher?.close();
      await t?.stop();
      await store?.dispose(!passed);
    });

    const api = (method: string, path: string, opts: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) =>
      t.api(method, `/api/v1${path}`, { token: t.adminToken, ...opts }).then((r) => {
        if (r.status >= 400) errorBodies.push(r);
        return r;
      });
    const auditOf = async (query: string): Promise<AuditRow[]> => {
      const r = await api('GET', `/audit?${query}&limit=1000`);
      expect(r.status).toBe(200);
      return r.body.entries as AuditRow[];
    };
    const createProbe = async (parameters: Record<string, unknown>, token = t.adminToken) => {
      const r = await api('POST', '/tasks', { token, body: { task_type: 'dp_probe', required_capabilities: ['dp_probe'], parameters, max_retries: 0 } });
      expect(r.status).toBe(201);
      return r.body.task_id as string;
    };

    it('audits every task read in its transaction, masks for callers without phi:read, shows the assigned agent its task in full', () => track(async () => {
      const params = { text: CANARY_TEXT, patient_id: CANARY_PATIENT, score: 42 };
      const id = await createProbe(params);

      const admin = await api('GET', `/tasks/${id}`, { headers: { 'x-request-id': `dp-admin-${TAG}` } });
      expect(admin.status).toBe(200);
      expect(admin.body.parameters).toEqual(params);
      const adminReads = (await auditOf(`resource_type=task&resource_id=${id}&action=read`)).filter((e) => e.request_id === `dp-admin-${TAG}`);
      expect(adminReads).toHaveLength(1);
      expect(adminReads[0]).toMatchObject({ outcome: 'success', fields: ['parameters'], data_classification: 'phi', actor: { type: 'user', role: 'admin' } });

      const sup = await userToken(t, 'supervisor');
      const masked = await api('GET', `/tasks/${id}`, { token: sup });
      expect(masked.status).toBe(200);
      expect(masked.body.parameters).toEqual({ text: maskPhi(CANARY_TEXT), patient_id: maskPhi(CANARY_PATIENT), score: '**' });
      for (const c of CANARIES) expect(masked.text).not.toContain(c);
      const supReads = (await auditOf(`resource_type=task&resource_id=${id}&action=read`)).filter((e) => e.actor.role === 'supervisor');
      expect(supReads).toHaveLength(1);

      // The assigned agent: the delivery (claim) is audited, and its own GET shows the parameters in full.
      const agent = await registerAgent(t, { agent_id: `dp-agent-${TAG}`, capabilities: ['dp_probe'] });
      const claim = await api('POST', '/tasks/claim', { token: agent.access_token, body: { max: 10, wait_ms: 2000 } });
      expect(claim.status).toBe(200);
      const delivered = (claim.body.tasks as Array<{ task_id: string; parameters: unknown }>).find((d) => d.task_id === id);
      expect(delivered?.parameters).toEqual(params);
      await t.server.security.phi.flush();
      const deliveries = (await auditOf(`resource_type=task&resource_id=${id}&actor=${agent.agent_id}`)).filter((e) => e.request_id === 'delivery');
      expect(deliveries).toHaveLength(1);
      expect(deliveries[0]).toMatchObject({ action: 'read', fields: ['parameters'], outcome: 'success', actor: { type: 'agent', id: agent.agent_id } });
      const own = await api('GET', `/tasks/${id}`, { token: agent.access_token });
      expect(own.status).toBe(200);
      expect(own.body.parameters).toEqual(params);
      expect((await auditOf(`resource_type=task&resource_id=${id}&action=read&actor=${agent.agent_id}`)).length).toBe(2);

      // The agent records a PHI result; a supervisor sees it masked.
      const done = await api('POST', `/tasks/${id}/complete`, { token: agent.access_token, body: { attempt: own.body.attempt, result: { summary: CANARY_RESULT } } });
      expect(done.status).toBe(200);
      const supResult = await api('GET', `/tasks/${id}`, { token: sup });
      expect(supResult.body.result).toEqual({ summary: maskPhi(CANARY_RESULT) });
      expect((await api('GET', `/tasks/${id}`)).body.result).toEqual({ summary: CANARY_RESULT });

      // A non-PHI classification is still audited but shown as is.
      const pub = await api('POST', '/tasks', { body: { task_type: 'dp_probe', required_capabilities: ['dp_probe'], parameters: { note: 'public note' }, data_classification: 'public' } });
      expect((await api('GET', `/tasks/${pub.body.task_id}`, { token: sup })).body.parameters).toEqual({ note: 'public note' });
      expect(await auditOf(`resource_type=task&resource_id=${pub.body.task_id}&action=read`)).toHaveLength(1);

      // If the audit write fails, the read fails (and discloses nothing).
      await store.db.exec(`CREATE FUNCTION dp_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store refuses writes'; END $$;
        CREATE TRIGGER dp_refuse_audit BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION dp_refuse_audit();`);
      try {
        const refused = await api('GET', `/tasks/${id}`);
        expect(refused.status).toBe(500);
        expect(refused.body.error.code).toBe('INTERNAL_ERROR');
        for (const c of CANARIES) expect(refused.text).not.toContain(c);
      } finally {
        await store.db.exec('DROP TRIGGER dp_refuse_audit ON audit_pending; DROP FUNCTION dp_refuse_audit();');
      }
      expect((await api('GET', `/tasks/${id}`)).status).toBe(200);
    }));

    it('counts deliveries against the bulk-read rule, except for the built-in in-process agent (still audited)', () => track(async () => {
      const fake = (n: number) => Array.from({ length: n }, () => ({ task_id: randomUUID(), data_classification: 'phi' }));
      const builtinTasks = fake(501);
      t.server.security.phi.delivered('builtin-local', builtinTasks);
      t.server.security.phi.delivered(`dp-bulk-${TAG}`, fake(501));
      await t.server.security.phi.flush();
      expect(t.server.security.phi.pending).toBe(0);
      const alerts = (await api('GET', '/security/alerts?rule=phi_bulk_read&limit=1000')).body.alerts as Array<{ principal: string }>;
      expect(alerts.map((a) => a.principal)).toContain(`agent:dp-bulk-${TAG}`);
      expect(alerts.map((a) => a.principal)).not.toContain('agent:builtin-local');
      const audited = await auditOf(`resource_type=task&resource_id=${builtinTasks[500]!.task_id}&actor=builtin-local`);
      expect(audited).toHaveLength(1);
      // A flush writes one entry per agent naming every task it was sent (500 per flush here).
      const grouped = await auditOf(`resource_type=task&resource_id=${builtinTasks[10]!.task_id}&actor=builtin-local`);
      expect(grouped).toHaveLength(1);
      expect(grouped[0]!.resource_id).toBeNull();
      expect(grouped[0]!.resource_ids).toEqual(builtinTasks.slice(0, 500).map((x) => x.task_id));
    }));

    it('fails closed on a tampered or moved ciphertext, without the value, and audits the failure as high risk', () => track(async () => {
      const a = await createProbe({ text: CANARY_TEXT, which: 'a' });
      const b = await createProbe({ text: CANARY_TEXT, which: 'b' });
      const stored = async (id: string) => (await store.db.query<{ parameters: string }>('SELECT parameters FROM tasks WHERE task_id = $1', [id])).rows[0]!.parameters;
      const original = await stored(a);
      expect(original.startsWith(CIPHERTEXT_PREFIX)).toBe(true);

      // Flip one bit in the middle of the encrypted bytes (the stored form stays well-formed).
      const sep = original.lastIndexOf(':');
      const bytes = Buffer.from(original.slice(sep + 1), 'base64url');
      bytes[bytes.length >> 1]! ^= 0x01;
      const flipped = `${original.slice(0, sep + 1)}${bytes.toString('base64url')}`;
      expect(flipped).not.toBe(original);
      expect(flipped.length).toBe(original.length);
      await store.db.query('UPDATE tasks SET parameters = $2 WHERE task_id = $1', [a, flipped]);
      const tampered = await api('GET', `/tasks/${a}`, { headers: { 'x-request-id': `dp-tamper-${TAG}` } });
      expect(tampered.status).toBe(500);
      expect(tampered.body.error).toEqual({ code: 'INTERNAL_ERROR', message: 'An internal error occurred.', request_id: `dp-tamper-${TAG}` });
      for (const c of CANARIES) expect(tampered.text).not.toContain(c);

      // Move b's (valid) ciphertext into a's row: bound to b's row id, it must not decrypt there.
      await store.db.query('UPDATE tasks SET parameters = $2 WHERE task_id = $1', [a, await stored(b)]);
      const moved = await api('GET', `/tasks/${a}`, { headers: { 'x-request-id': `dp-moved-${TAG}` } });
      expect(moved.status).toBe(500);
      expect(moved.body.error.code).toBe('INTERNAL_ERROR');
      expect(moved.body.error.details).toBeUndefined();
      for (const c of CANARIES) expect(moved.text).not.toContain(c);

      const failures = await auditOf(`resource_type=task&resource_id=${a}&outcome=failure`);
      expect(failures.map((f) => f.request_id).sort()).toEqual([`dp-moved-${TAG}`, `dp-tamper-${TAG}`]);
      for (const f of failures) {
        expect(f).toMatchObject({ action: 'read', risk_level: 'high', outcome: 'failure', data_classification: 'phi', actor: { type: 'user', role: 'admin' } });
        expect(f.fields).toEqual(['parameters', 'decryption:authentication_failed']);
      }
      // b itself is untouched; restoring a's own ciphertext makes it readable again.
      expect((await api('GET', `/tasks/${b}`)).body.parameters).toEqual({ text: CANARY_TEXT, which: 'b' });
      await store.db.query('UPDATE tasks SET parameters = $2 WHERE task_id = $1', [a, original]);
      expect((await api('GET', `/tasks/${a}`)).body.parameters).toEqual({ text: CANARY_TEXT, which: 'a' });
      await store.db.query(`UPDATE tasks SET status = 'cancelled' WHERE task_id = ANY($1::uuid[])`, [[a, b]]);
    }));

    it('keeps the canary out of every table and column, the logs, error bodies and socket payloads', () => track(async () => {
      // Task parameters handled by a built-in agent (result sealed too).
      const builtin = await api('POST', '/tasks', { body: { task_type: 'sentiment_analysis', parameters: { text: `I feel hopeless today. ${CANARY_TEXT}`, patient_id: CANARY_PATIENT } } });
      expect(builtin.status).toBe(201);
      // A pipeline run with PHI in its input and context.
      const run = await api('POST', '/pipelines', { body: {
        name: 'canary session',
        input_data: { text: `Therapist: How have you been sleeping, ${CANARY}?\nClient: Badly. My name is Jane Roe and my id is ${CANARY_PATIENT}.\nTherapist: Thank you for sharing that.` },
        context: { session_type: 'individual', patient_id: CANARY_PATIENT, session_id: CANARY_SESSION },
      } });
      expect(run.status).toBe(201);
      // Refusals carrying the canary: the error bodies must not echo it.
      await api('POST', '/tasks', { body: { task_type: 'sentiment_analysis', parameters: { text: CANARY }, bogus_field: CANARY } });
      await api('GET', `/tasks/${CANARY_PATIENT}`);
      await api('GET', `/no-such-route/${CANARY_PATIENT}`);
      await api('GET', `/pipelines?status=${CANARY}`);

      const finalRun = await waitFor(async () => {
        const r = await api('GET', `/pipelines/${run.body.pipeline_id}`);
        return ['completed', 'partially_completed', 'failed'].includes(r.body.status) ? r.body : null;
      }, 60_000, 100);
      expect(finalRun.status).toBe('completed');
      await waitFor(async () => (await api('GET', `/tasks/${builtin.body.task_id}`)).body.status === 'completed', 30_000);
      // patient_id is searchable through its blind index, never stored in clear
      const search = await api('GET', `/pipelines?patient_id=${CANARY_PATIENT}`);
      expect(search.body.pipelines.map((p: { pipeline_id: string }) => p.pipeline_id)).toEqual([run.body.pipeline_id]);
      await t.server.security.phi.flush();

      // Every column of every table of this database, read directly.
      const { rows: cols } = await store.db.query<{ table_name: string; column_name: string }>(
        `SELECT c.table_name, c.column_name FROM information_schema.columns c JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' ORDER BY 1, 2`);
      const tables = new Set(cols.map((c) => c.table_name));
      for (const required of ['tasks', 'task_events', 'pipelines', 'pipeline_stages', 'audit_log', 'idempotency_keys', 'users', 'agents', 'key_versions']) expect(tables).toContain(required);
      expect(cols.length).toBeGreaterThan(60);
      const hits: string[] = [];
      for (const { table_name: tbl, column_name: col } of cols) {
        const { rows } = await store.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "${tbl}" WHERE strpos("${col}"::text, $1) > 0 OR strpos("${col}"::text, $2) > 0 OR strpos("${col}"::text, $3) > 0 OR strpos("${col}"::text, $4) > 0`, CANARIES);
        if (rows[0]!.n > 0) hits.push(`${tbl}.${col} (${rows[0]!.n})`);
      }
      expect(hits).toEqual([]);
      // …and the sealed columns really hold ciphertexts for this session.
      const { rows: sealed } = await store.db.query<{ input_data: string; context: string; output: string }>('SELECT input_data, context, output FROM pipelines WHERE pipeline_id = $1', [run.body.pipeline_id]);
      for (const v of Object.values(sealed[0]!)) expect(v.startsWith(CIPHERTEXT_PREFIX)).toBe(true);

      const logs = capture.text;
      expect(logs.length).toBeGreaterThan(10_000);
      for (const c of CANARIES) expect(logs).not.toContain(c);
      expect(errorBodies.length).toBeGreaterThanOrEqual(4);
      for (const r of errorBodies) for (const c of CANARIES) expect(r.text).not.toContain(c);
      await new Promise((r) => setTimeout(r, 200));
      expect(socketPayloads.length).toBeGreaterThan(10);
      const wire = JSON.stringify(socketPayloads);
      for (const c of CANARIES) expect(wire).not.toContain(c);
    }), 90_000);

    it('rotates the field key under live traffic: nothing lost, every sealed value under the new kid, persisted across a restart', () => track(async () => {
      const keys = t.server.security.keys;
      const before = keys.currentKid;
      const sent = new Map<string, Record<string, unknown>>();
      const createBatch = async (n: number, tag: string) => {
        const tasks = Array.from({ length: n }, (_, i) => ({ task_type: 'sentiment_analysis', parameters: { text: `${tag} ${i} I feel calm now.`, seq: i } }));
        const r = await api('POST', '/tasks/batch', { body: { tasks } });
        expect(r.status).toBe(201);
        (r.body.task_ids as string[]).forEach((id, i) => sent.set(id, tasks[i]!.parameters));
      };
      // sealed values of every kind: tasks + results, a pipeline, an idempotent response, an MFA secret
      await createBatch(250, 'before');
      const idem = await api('POST', '/tasks', { body: { task_type: 'dp_probe', required_capabilities: ['dp_probe'], parameters: { x: 1 } }, headers: { 'idempotency-key': `dp-idem-${TAG}` } });
      expect(idem.status).toBe(201);
      sent.set(idem.body.task_id, { x: 1 });
      const mfa = await api('POST', '/auth/mfa/setup', { token: await userToken(t, 'supervisor') });
      expect([200, 201]).toContain(mfa.status);
      const pipe = await api('POST', '/pipelines', { body: { input_data: { text: 'Therapist: hello.\nClient: hi, I am fine.' }, context: { session_type: 'individual', patient_id: `rot-${TAG}` } } });
      expect(pipe.status).toBe(201);

      // Live traffic across the rotation: batches keep coming while the leader re-encrypts.
      let stop = false;
      let rounds = 0;
      const traffic = (async () => {
        while (!stop) {
          await createBatch(20, `live-${rounds++}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      await waitFor(() => rounds >= 2, 30_000, 5);
      const rotated = await rotateKeys(keys, { field: true });
      expect(rotated.field?.kid).not.toBe(before);
      expect(rotated.signing).toBeNull();
      const kid = rotated.field!.kid;
      expect(keys.currentKid).toBe(kid);
      const status = await waitFor(async () => {
        const s = await keys.status();
        return s.latest?.reencrypt_completed_at ? s : null;
      }, 60_000, 50);
      const atCompletion = rounds;
      await waitFor(() => rounds >= atCompletion + 2, 30_000, 5); // and writes go on after it
      stop = true;
      await traffic;
      expect(status.latest!.reencrypted_rows).toBeGreaterThan(250);
      expect(status.latest!.reencrypt_failed_rows).toBe(0);
      // let the in-flight work finish, then every sealed value of every column is under the new key
      await waitFor(async () => (await store.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status NOT IN ('completed', 'cancelled') AND task_type = 'sentiment_analysis'`)).rows[0]!.n === 0, 60_000, 100);
      await waitFor(async () => ['completed', 'partially_completed', 'failed'].includes((await api('GET', `/pipelines/${pipe.body.pipeline_id}`)).body.status), 30_000);
      const after = await keys.status();
      const kidsSeen = new Set<string>();
      for (const c of after.by_column) for (const k of Object.keys(c.kids)) kidsSeen.add(k);
      expect([...kidsSeen]).toEqual([kid]);
      for (const col of ['tasks.parameters', 'tasks.result', 'pipelines.input_data', 'pipelines.context', 'pipelines.output', 'users.mfa_pending_secret', 'signing_keys.private_key', 'idempotency_keys.response_body']) {
        const c = after.by_column.find((x) => `${x.table}.${x.column}` === col)!;
        expect(c.kids[kid] ?? 0, col).toBeGreaterThan(0);
      }
      // nothing lost: every task reads back exactly what was sent; every sentiment task has a result
      const { rows } = await store.db.query<{ task_id: string; status: string; parameters: string; result: string | null }>('SELECT task_id, status, parameters, result FROM tasks WHERE task_id = ANY($1::uuid[])', [[...sent.keys()]]);
      expect(rows).toHaveLength(sent.size);
      for (const r of rows) expect(keyIdOf(r.parameters)).toBe(kid);
      const sample = [...sent.keys()].filter((_, i) => i % 25 === 0);
      for (const id of sample) {
        const d = await api('GET', `/tasks/${id}`);
        expect(d.status).toBe(200);
        expect(d.body.parameters).toEqual(sent.get(id));
        if (d.body.task_type === 'sentiment_analysis') expect(d.body.result).not.toBeNull();
      }
      const replay = await api('POST', '/tasks', { body: { task_type: 'dp_probe', required_capabilities: ['dp_probe'], parameters: { x: 1 } }, headers: { 'idempotency-key': `dp-idem-${TAG}` } });
      expect(replay.body.task_id).toBe(idem.body.task_id);
      expect((await api('GET', '/audit/verify')).body.ok).toBe(true);
      const rotations = await auditOf('action=key_rotate');
      expect(rotations.map((e) => e.resource_id)).toContain(kid);
      expect((await auditOf('action=key_reencrypt')).map((e) => e.resource_id)).toContain(kid);

      // A restart on the same store and master key reads the persisted version count.
      const one = sample[0]!;
      await t.stop();
      watcher?.close();
      t = await start(store, capture);
      expect(t.server.security.keys.currentKid).toBe(kid);
      expect((await api('GET', `/tasks/${one}`)).body.parameters).toEqual(sent.get(one));
      const fresh = await createProbe({ after: 'restart' });
      expect(keyIdOf((await store.db.query<{ parameters: string }>('SELECT parameters FROM tasks WHERE task_id = $1', [fresh])).rows[0]!.parameters)).toBe(kid);
    }), 180_000);

    it('a second process sharing the store reads values written under a newer key at once and switches its writes after the poll', () => track(async () => {
      // A second server on the same store with its own (in-process) coordination: it hears of
      // rotations only by polling key_versions. Its watcher is paused for the first rotation so
      // the "not yet synced" state is deterministic.
      const other = await start(store, capture, { 'agents.builtin': false });
      try {
        await other.server.security.keys.stop();
        const oldKid = other.server.security.keys.currentKid;
        const { field } = await rotateKeys(t.server.security.keys, {});
        const kid = field!.kid;
        expect(other.server.security.keys.currentKid).toBe(oldKid);
        const id = await createProbe({ text: CANARY_TEXT, via: 'first' });
        expect(keyIdOf((await store.db.query<{ parameters: string }>('SELECT parameters FROM tasks WHERE task_id = $1', [id])).rows[0]!.parameters)).toBe(kid);
        const read = await other.api('GET', `/api/v1/tasks/${id}`, { token: other.adminToken });
        expect(read.status).toBe(200);
        expect(read.body.parameters).toEqual({ text: CANARY_TEXT, via: 'first' });
        await other.server.security.keys.start();
        expect(other.server.security.keys.currentKid).toBe(kid);
        const made = await other.api('POST', '/api/v1/tasks', { token: other.adminToken, body: { task_type: 'dp_probe', required_capabilities: ['dp_probe'], parameters: { via: 'second' } } });
        expect(keyIdOf((await store.db.query<{ parameters: string }>('SELECT parameters FROM tasks WHERE task_id = $1', [made.body.task_id])).rows[0]!.parameters)).toBe(kid);
        expect((await api('GET', `/tasks/${made.body.task_id}`)).body.parameters).toEqual({ via: 'second' });
        // a later rotation reaches it by the poll alone
        const next = (await rotateKeys(t.server.security.keys, { field: true })).field!.kid;
        await waitFor(() => other.server.security.keys.currentKid === next, 5000);
        await waitFor(async () => (await t.server.security.keys.status()).latest?.reencrypt_completed_at, 30_000);
        await store.db.query(`UPDATE tasks SET status = 'cancelled' WHERE task_id = ANY($1::uuid[])`, [[id, made.body.task_id]]);
      } finally {
        await other.stop();
      }
    }), 60_000);

    it('rotates the signing key without breaking live tokens (overlap = the longest token lifetime)', () => track(async () => {
      const oldToken = t.adminToken;
      const oldKid = decodeProtectedHeader(oldToken).kid;
      const { signing, field } = await rotateKeys(t.server.security.keys, { signing: true });
      expect(field).toBeNull();
      expect(signing!.overlap_seconds).toBe(86400);
      expect(signing!.kid).not.toBe(oldKid);
      expect((await t.api('GET', '/api/v1/auth/me', { token: oldToken })).status).toBe(200);
      const s = await connectSocket(t.wsUrl, oldToken);
      s.close();
      const login = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      expect(decodeProtectedHeader(login.body.access_token).kid).toBe(signing!.kid);
      const jwks = (await t.api('GET', '/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
      expect(jwks).toEqual(expect.arrayContaining([oldKid, signing!.kid]));
      const { rows } = await store.db.query<{ kid: string; expires_at: Date | null }>('SELECT kid, expires_at FROM signing_keys WHERE kid = $1', [oldKid]);
      expect(rows[0]!.expires_at!.getTime() - Date.now()).toBeGreaterThan(86_000_000);
      expect((await auditOf('action=key_rotate&resource_type=signing_key')).map((e) => e.resource_id)).toContain(signing!.kid);
    }));
  });
}
