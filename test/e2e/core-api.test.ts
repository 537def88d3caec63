/**
 * The core REST API end to end over real HTTP, on every engine: login, agents, token exchange,
 * tasks (create/list/get/cancel/retry/batch), idempotent replay, errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../helpers/stores.ts';
import { registerAgent, startTestServer, userToken, type TestServer } from '../helpers/server.ts';

describe.each(engines())('core API on $name', (engine) => {
  let t: TestServer;
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await engine.open();
    // Malformed requests count against the rate limit too; this file registers many agents.
    t = await startTestServer({ 'agents.builtin': false, 'limits.register_per_min': 100 }, { db: tdb.db });
  });
  afterAll(async () => {
    await t?.stop();
    await tdb?.dispose();
  });

  it('logs in and reports the user', async () => {
    const r = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } });
    expect(r.status).toBe(200);
    expect(r.body.token_type).toBe('Bearer');
    expect(r.body.expires_in).toBe(900);
    expect(r.body.user).toMatchObject({ username: 'admin', role: 'admin', mfa_enabled: false });
    const bad = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'wrong-password-xx' } });
    const unknown = await t.api('POST', '/api/v1/auth/login', { body: { username: 'nobody', password: 'wrong-password-xx' } });
    expect(bad.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(bad.body.error.code).toBe('INVALID_CREDENTIALS');
    expect({ ...unknown.body.error, request_id: 'x' }).toEqual({ ...bad.body.error, request_id: 'x' });
  });

  it('registers an agent, shows the key once, exchanges it for tokens', async () => {
    const a = await registerAgent(t, { agent_id: 'agent-core-1', capabilities: ['sentiment_analysis', 'text_processing'] });
    expect(a.api_key).toMatch(/^mcp_ak_/);
    const detail = await t.api('GET', '/api/v1/agents/agent-core-1', { token: t.adminToken });
    expect(detail.status).toBe(200);
    expect(JSON.stringify(detail.body)).not.toContain(a.api_key);
    expect(detail.body.performance_metrics).toMatchObject({ tasks_completed: 0, tasks_failed: 0, success_rate: 1 });
    const tok = await t.api('POST', '/api/v1/auth/token', { body: { agent_id: 'agent-core-1', api_key: a.api_key } });
    expect(tok.status).toBe(200);
    expect(tok.body.access_token).toBeTruthy();
    const wrong = await t.api('POST', '/api/v1/auth/token', { body: { agent_id: 'agent-core-1', api_key: 'mcp_ak_wrong' } });
    expect(wrong.status).toBe(401);
    const dup = await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, body: { agent_id: 'agent-core-1', name: 'x', type: 'general', capabilities: ['a'], version: '1.0.0' } });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('AGENT_ALREADY_REGISTERED');
  });

  it('discovers agents holding all capabilities and refuses bad capability lists', async () => {
    await registerAgent(t, { agent_id: 'agent-disc-a', capabilities: ['bias_detection', 'text_analysis'] });
    await registerAgent(t, { agent_id: 'agent-disc-b', capabilities: ['bias_detection'] });
    const r = await t.api('GET', '/api/v1/agents/discover?capabilities=bias_detection,text_analysis', { token: t.adminToken });
    expect(r.status).toBe(200);
    expect(r.body.agents.map((a: { agent_id: string }) => a.agent_id)).toEqual(['agent-disc-a']);
    const both = await t.api('GET', '/api/v1/agents/discover?capabilities=bias_detection', { token: t.adminToken });
    expect(both.body.agents.map((a: { agent_id: string }) => a.agent_id).sort()).toEqual(['agent-disc-a', 'agent-disc-b']);
    const bad = await t.api('GET', '/api/v1/agents/discover?capabilities=Bad Cap', { token: t.adminToken });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_CAPABILITIES');
  });

  it('lists agents a page at a time, in registration order, with the total', async () => {
    // The two agents the discovery test registered hold bias_detection.
    const page = async (query: string) => (await t.api('GET', `/api/v1/agents?capability=bias_detection&${query}`, { token: t.adminToken })).body as { agents: Array<{ agent_id: string; status: string }>; pagination: { total: number; limit: number; offset: number } };
    const first = await page('limit=1');
    expect(first.agents.map((a) => a.agent_id)).toEqual(['agent-disc-a']);
    expect(first.pagination).toMatchObject({ total: 2, limit: 1, offset: 0 });
    const second = await page('limit=1&offset=1');
    expect(second.agents.map((a) => a.agent_id)).toEqual(['agent-disc-b']);
    expect(second.pagination).toMatchObject({ total: 2, offset: 1 });
    const past = await page('limit=1&offset=5');
    expect(past.agents).toEqual([]);
    expect(past.pagination.total).toBe(2);
    const status = first.agents[0]!.status;
    const byStatus = await page(`status=${status}&limit=1&offset=1`);
    expect(byStatus.agents.map((a) => a.agent_id)).toEqual(['agent-disc-b']);
    expect(byStatus.pagination.total).toBe(2);
    expect((await page(`status=${status === 'busy' ? 'active' : 'busy'}`)).pagination.total).toBe(0);
    // Past the first 1,000 agents, with and without a status filter (agents written straight to the
    // store: registering 1,001 through the API would meet its rate limit).
    await tdb.db.query(`INSERT INTO agents (agent_id, name, type, capabilities, version, max_concurrent_tasks, metadata, tags, role, builtin, api_key_hash)
      SELECT 'bulk-' || lpad(g::text, 4, '0'), 'bulk', 'general', ARRAY['bulk_cap'], '1.0.0', 1, '{}'::jsonb, '{}'::text[], 'worker', false, 'x' FROM generate_series(1, 1001) AS g`);
    for (const query of ['limit=5&offset=999', `status=${status}&limit=5&offset=999`]) {
      const r = (await t.api('GET', `/api/v1/agents?capability=bulk_cap&${query}`, { token: t.adminToken })).body as { agents: Array<{ agent_id: string }>; pagination: { total: number } };
      expect(r.agents.map((a) => a.agent_id)).toEqual(['bulk-1000', 'bulk-1001']);
      expect(r.pagination.total).toBe(1001);
    }
  });

  it('updates agents: empty body → EMPTY_UPDATE; self may change capabilities only', async () => {
    const a = await registerAgent(t, { agent_id: 'agent-upd', capabilities: ['x_one'] });
    const empty = await t.api('PUT', '/api/v1/agents/agent-upd', { token: t.adminToken, body: {} });
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe('EMPTY_UPDATE');
    const self = await t.api('PUT', '/api/v1/agents/agent-upd', { token: a.access_token, body: { capabilities: ['x_two'] } });
    expect(self.status).toBe(200);
    expect(self.body.capabilities).toEqual(['x_two']);
    const selfName = await t.api('PUT', '/api/v1/agents/agent-upd', { token: a.access_token, body: { name: 'renamed' } });
    expect(selfName.status).toBe(403);
    const admin = await t.api('PUT', '/api/v1/agents/agent-upd', { token: t.adminToken, body: { name: 'renamed', max_concurrent_tasks: 9 } });
    expect(admin.body).toMatchObject({ name: 'renamed', max_concurrent_tasks: 9 });
  });

  it('heartbeats only for itself and soft-deletes agents whose credentials then stop', async () => {
    const a = await registerAgent(t, { agent_id: 'agent-hb' });
    const b = await registerAgent(t, { agent_id: 'agent-hb-other' });
    const ok = await t.api('POST', '/api/v1/agents/agent-hb/heartbeat', { token: a.access_token, body: { status: 'active', system_metrics: { cpu_usage: 12.5 } } });
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('acknowledged');
    expect(Date.parse(ok.body.next_heartbeat)).toBeGreaterThan(Date.now());
    const other = await t.api('POST', '/api/v1/agents/agent-hb/heartbeat', { token: b.access_token, body: {} });
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe('UNAUTHORIZED_HEARTBEAT');
    const health = await t.api('GET', '/api/v1/agents/agent-hb/health', { token: t.adminToken });
    expect(health.body).toMatchObject({ agent_id: 'agent-hb', status: 'healthy' });
    const del = await t.api('DELETE', '/api/v1/agents/agent-hb', { token: t.adminToken });
    expect(del.status).toBe(204);
    expect((await t.api('GET', '/api/v1/agents/agent-hb', { token: t.adminToken })).status).toBe(404);
    const after = await t.api('POST', '/api/v1/agents/agent-hb/heartbeat', { token: a.access_token, body: {} });
    expect(after.status).toBe(401);
    const exchange = await t.api('POST', '/api/v1/auth/token', { body: { agent_id: 'agent-hb', api_key: a.api_key } });
    expect(exchange.status).toBe(401);
  });

  it('answers each create with its place in the queue: by priority, then age, counting the tasks already waiting', async () => {
    const create = (priority: number) => t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'queue_probe', required_capabilities: ['nobody_has_this'], priority } });
    const top = await create(10);
    expect(top.status).toBe(201);
    const waitingTop = (await t.api('GET', '/api/v1/tasks?status=pending&limit=1000', { token: t.adminToken })).body.tasks.filter((x: { priority: number }) => x.priority === 10).length;
    expect(top.body.queue_position).toBe(waitingTop);
    const next = await create(10);
    expect(next.body.queue_position).toBe(top.body.queue_position + 1);
    const low = await create(1);
    const pending = (await t.api('GET', '/api/v1/tasks?status=pending&limit=1', { token: t.adminToken })).body.pagination.total;
    expect(low.body.queue_position).toBe(pending); // the oldest lowest-priority task waits behind all others
    const third = await create(10);
    expect(third.body.queue_position).toBe(next.body.queue_position + 1); // jumps ahead of the low one
  });

  it('creates, lists, gets and cancels tasks with priorities and defaults', async () => {
    const c = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'sentiment_analysis', parameters: { text: 'hello' }, priority: 'high' } });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ status: 'pending', queue_position: expect.any(Number) });
    const g = await t.api('GET', `/api/v1/tasks/${c.body.task_id}`, { token: t.adminToken });
    expect(g.body).toMatchObject({ task_id: c.body.task_id, priority: 8, required_capabilities: ['sentiment_analysis'], data_classification: 'phi', timeout_seconds: 300, max_retries: 3, parameters: { text: 'hello' }, attempt: 0 });
    expect(g.body.history).toEqual([{ from_status: null, to_status: 'pending', attempt: 0, agent_id: null, reason: 'created', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) }]);
    expect(Math.abs(Date.parse(g.body.history[0].at) - Date.parse(g.body.created_at))).toBeLessThan(1000);
    const list = await t.api('GET', '/api/v1/tasks?status=pending&task_type=sentiment_analysis&limit=1&sort=created_at:desc', { token: t.adminToken });
    expect(list.status).toBe(200);
    expect(list.body.tasks).toHaveLength(1);
    expect(list.body.pagination).toMatchObject({ limit: 1, offset: 0 });
    const cancel = await t.api('POST', `/api/v1/tasks/${c.body.task_id}/cancel`, { token: t.adminToken });
    expect(cancel.body.status).toBe('cancelled');
    const again = await t.api('POST', `/api/v1/tasks/${c.body.task_id}/cancel`, { token: t.adminToken });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('INVALID_STATUS_TRANSITION');
    const retry = await t.api('POST', `/api/v1/tasks/${c.body.task_id}/retry`, { token: t.adminToken });
    expect(retry.status).toBe(409);
    const unknownType = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'mystery_work' } });
    expect(unknownType.status).toBe(400);
    expect(unknownType.body.error.details.field_errors[0].field).toBe('required_capabilities');
  });

  it('creates batches all or nothing and honours dependencies', async () => {
    const ok = await t.api('POST', '/api/v1/tasks/batch', { token: t.adminToken, body: { tasks: [{ task_type: 'pii_detection' }, { task_type: 'bias_detection', priority: 10 }] } });
    expect(ok.status).toBe(201);
    expect(ok.body.task_ids).toHaveLength(2);
    const before = (await t.api('GET', '/api/v1/tasks?limit=1000', { token: t.adminToken })).body.pagination.total;
    const bad = await t.api('POST', '/api/v1/tasks/batch', { token: t.adminToken, body: { tasks: [{ task_type: 'pii_detection' }, { task_type: 'odd_type' }] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.field_errors[0].field).toBe('tasks[1].required_capabilities');
    const after = (await t.api('GET', '/api/v1/tasks?limit=1000', { token: t.adminToken })).body.pagination.total;
    expect(after).toBe(before);
    const dep = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'export', dependencies: [ok.body.task_ids[0]] } });
    expect(dep.status).toBe(201);
    const missing = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'export', dependencies: ['01900000-0000-7000-8000-000000000000'] } });
    expect(missing.status).toBe(400);
  });

  it('replays an Idempotency-Key, refuses reuse with another body', async () => {
    const headers = { 'idempotency-key': 'key-core-1' };
    const one = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, headers, body: { task_type: 'pii_detection', parameters: { n: 1 } } });
    const two = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, headers, body: { task_type: 'pii_detection', parameters: { n: 1 } } });
    expect(one.status).toBe(201);
    expect(two.status).toBe(201);
    expect(two.body.task_id).toBe(one.body.task_id);
    expect(two.headers.get('idempotency-replayed')).toBe('true');
    const diff = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, headers, body: { task_type: 'pii_detection', parameters: { n: 2 } } });
    expect(diff.status).toBe(422);
    expect(diff.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const reg1 = await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, headers: { 'idempotency-key': 'reg-1' }, body: { agent_id: 'idem-agent', name: 'x', type: 'general', capabilities: ['a'], version: '1.0.0' } });
    const reg2 = await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, headers: { 'idempotency-key': 'reg-1' }, body: { agent_id: 'idem-agent', name: 'x', type: 'general', capabilities: ['a'], version: '1.0.0' } });
    expect(reg1.status).toBe(201);
    expect(reg2.status).toBe(201);
    expect(reg2.body.api_key).toBe(reg1.body.api_key);
  });

  it('lets a worker read only its own tasks (404 otherwise)', async () => {
    const w = await registerAgent(t, { agent_id: 'worker-own', capabilities: ['sentiment_analysis'] });
    const c = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'sentiment_analysis' } });
    const seen = await t.api('GET', `/api/v1/tasks/${c.body.task_id}`, { token: w.access_token });
    expect(seen.status).toBe(404);
    expect(seen.body.error.code).toBe('TASK_NOT_FOUND');
    const list = await t.api('GET', '/api/v1/tasks', { token: w.access_token });
    expect(list.body.tasks).toEqual([]);
    const sup = await userToken(t, 'supervisor');
    expect((await t.api('GET', `/api/v1/tasks/${c.body.task_id}`, { token: sup })).status).toBe(200);
  });

  it('answers unknown ids with 404 and malformed input with field errors, never a stack', async () => {
    const cases = [
      await t.api('GET', '/api/v1/tasks/01900000-0000-7000-8000-000000000000', { token: t.adminToken }),
      await t.api('GET', '/api/v1/agents/nope', { token: t.adminToken }),
      await t.api('GET', '/api/v1/agents/bad%20id!', { token: t.adminToken }),
      await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: '{"task_type": ' }),
      await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'pii_detection', bogus: 1 } }),
      await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'pii_detection', priority: 11 } }),
      await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, body: { name: '', type: 'robot', capabilities: [], version: 'v1' } }),
      await t.api('GET', '/api/v1/nothing-here', { token: t.adminToken }),
    ];
    expect(cases.map((c) => c.status)).toEqual([404, 404, 400, 400, 400, 400, 400, 404]);
    expect(cases[0]!.body.error.code).toBe('TASK_NOT_FOUND');
    expect(cases[1]!.body.error.code).toBe('AGENT_NOT_FOUND');
    expect(cases[4]!.body.error.details.field_errors).toEqual([{ field: 'bogus', message: 'is not allowed (unknown field)' }]);
    expect(cases[5]!.body.error.details.field_errors.map((f: { field: string }) => f.field)).toContain('priority');
    const fields = cases[6]!.body.error.details.field_errors.map((f: { field: string }) => f.field);
    expect(fields).toEqual(expect.arrayContaining(['name', 'type', 'capabilities', 'version']));
    for (const c of cases) {
      expect(c.body.error.request_id).toBe(c.headers.get('x-request-id'));
      expect(c.text).not.toMatch(/at .*\.ts:\d+|stack|SELECT /i);
    }
  });

  it('refuses oversized bodies with 413 and echoes a sane X-Request-ID', async () => {
    const big = 'x'.repeat(1024 * 1024 + 10);
    const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, raw: JSON.stringify({ task_type: 'pii_detection', parameters: { big } }) });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('REQUEST_TOO_LARGE');
    const echo = await t.api('GET', '/api/v1/health', { headers: { 'x-request-id': 'my-req-123' } });
    expect(echo.headers.get('x-request-id')).toBe('my-req-123');
    expect(echo.headers.get('x-content-type-options')).toBe('nosniff');
    expect(echo.headers.get('x-frame-options')).toBe('DENY');
    expect(echo.headers.get('x-ratelimit-limit')).toBe('60');
  });
});
