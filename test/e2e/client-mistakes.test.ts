/**
 * Non-negotiable 3: a client mistake gets a 400 in the SPEC §2 envelope, never a 500 — including
 * values the schema once let through but the store cannot hold (an offset or attempt past the
 * integer range, year 0000, a NUL character in text) and a URL Fastify cannot route. Over the
 * socket, one agent's unstorable result fails that agent's result only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { DELEGATION_CONFIG, connectSocket, emitAck, registerAgent, startTestServer, waitFor, type ApiResponse, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

const expect400 = (r: ApiResponse, field: string) => {
  expect(r.status).toBe(400);
  expect(r.body.error).toMatchObject({ code: 'VALIDATION_ERROR', request_id: r.headers.get('x-request-id') });
  expect(r.body.error.details.field_errors.map((f: { field: string }) => f.field)).toContain(field);
};

for (const engine of engines()) {
  describe(`client mistakes are 400s, not 500s, on ${engine.name}`, () => {
    let t: TestServer;
    let store: TestDb;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ ...DELEGATION_CONFIG }, { db: store.db });
    });
    afterAll(async () => {
      for (const s of sockets) s.close();
      await t?.stop();
      await store?.dispose();
    });

    it('an offset past the integer range on every list route', async () => {
      for (const path of ['/api/v1/users', '/api/v1/tasks', '/api/v1/agents', '/api/v1/pipelines', '/api/v1/audit', '/api/v1/tasks/dead-letter']) {
        expect400(await t.api('GET', `${path}?offset=100000000000000000000`, { token: t.adminToken }), 'query.offset');
      }
      expect((await t.api('GET', '/api/v1/tasks?offset=2147483647', { token: t.adminToken })).status).toBe(200);
    });

    it('an attempt past the integer range', async () => {
      const a = await registerAgent(t, { agent_id: 'mistake-attempt', capabilities: ['cap_mistake_attempt'] });
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'mistake', required_capabilities: ['cap_mistake_attempt'] } });
      const id = created.body.task_id as string;
      for (const [route, body] of [['progress', { attempt: 3_000_000_000, progress: 0.5 }], ['accept', { attempt: 3_000_000_000 }], ['complete', { attempt: 3_000_000_000, result: {} }]] as const) {
        expect400(await t.api('POST', `/api/v1/tasks/${id}/${route}`, { token: a.access_token, body }), 'attempt');
      }
    });

    it('year 0000 in a deadline and in an audit query', async () => {
      expect400(await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'sentiment_analysis', parameters: {}, deadline: '0000-01-01T00:00:00Z' } }), 'deadline');
      expect400(await t.api('GET', '/api/v1/audit?from=0000-01-01T00:00:00Z', { token: t.adminToken }), 'query.from');
      expect((await t.api('GET', '/api/v1/audit?from=0001-01-01T00:00:00Z&limit=1', { token: t.adminToken })).status).toBe(200);
    });

    it('a NUL character in a body or a query string, also before authentication', async () => {
      const login = await t.api('POST', '/api/v1/auth/login', { raw: '{"username":"adm\\u0000in","password":"whatever-password"}' });
      expect400(login, '(body)');
      expect400(await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '{"task_type":"x","required_capabilities":["c"],"metadata":{"n":"a\\u0000b"}}' }), '(body)');
      expect400(await t.api('GET', '/api/v1/audit?actor=a%00b', { token: t.adminToken }), '(query)');
      // An escaped backslash followed by the text "u0000" is not a NUL: accepted.
      const text = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '{"task_type":"x","required_capabilities":["c"],"metadata":{"n":"a\\\\u0000b"}}' });
      expect(text.status).toBe(201);
      expect((await t.api('GET', `/api/v1/tasks/${text.body.task_id}`, { token: t.adminToken })).body.metadata.n).toBe('a\\u0000b');
    });

    it('a URL with bad percent-encoding gets the envelope, a request id and the security headers, and the path is not echoed', async () => {
      const r = await t.api('GET', '/api/v1/tasks/patient-John-Smith%ZZ', { token: t.adminToken });
      expect400(r, '(path)');
      expect(r.text).not.toContain('John');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('DENY');
    });

    it('over the socket, an unstorable result fails that result alone; the agent can still complete the task', async () => {
      const a = await registerAgent(t, { agent_id: 'mistake-socket', capabilities: ['cap_mistake_socket'] });
      const delegated: Array<{ task_id: string; attempt: number }> = [];
      const s = await connectSocket(t.wsUrl, a.access_token, { setup: (sock) => sock.on('task:delegate', (task: { task_id: string; attempt: number }, ack?: (r: unknown) => void) => { delegated.push(task); ack?.({ ok: true }); }) });
      sockets.push(s);
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'mistake', required_capabilities: ['cap_mistake_socket'] } });
      const task = await waitFor(() => delegated.find((d) => d.task_id === created.body.task_id));
      const bad = await emitAck(s, 'task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { ok: 1 }, metadata: { note: 'a\u0000b' } });
      expect(bad).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR' } });
      const good = await emitAck(s, 'task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { ok: 1 } });
      expect(good.ok).toBe(true);
      expect((await t.api('GET', `/api/v1/tasks/${task.task_id}`, { token: t.adminToken })).body.status).toBe('completed');
    });
  });
}
