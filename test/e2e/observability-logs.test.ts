/**
 * Logs never carry PHI or secrets: a real server logs at `trace` into a captured stream while a
 * scripted session sends a PHI canary in task parameters and uses passwords, JWTs, refresh
 * tokens and an agent API key. Neither the captured output nor any error body may contain them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { createLogger, scrub } from '../../src/observability/index.ts';
import { http, type HttpResult } from '../deploy/prom-text.ts';

const ADMIN_PASSWORD = 'admin-password-123';
const CANARY = 'PHI-CANARY-7f3a9c Jane Roe DOB 1971-04-02 SSN 078-05-1120';
const CANARY_ID = 'canary-patient-88231';
const WRONG_PASSWORD = 'wrong-password-canary-5521';
const BOGUS_TOKEN = 'bogus-token-canary-0042.abc.def';

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

const capture = new Capture();
let server: McpServer;
let base: string;
const secrets: string[] = [ADMIN_PASSWORD, WRONG_PASSWORD, BOGUS_TOKEN];
const errorBodies: HttpResult[] = [];

beforeAll(async () => {
  const config = loadConfig({
    env: {},
    overrides: { 'server.port': 0, 'server.ws_port': 0, 'store.data_dir': ':memory:', 'log.level': 'trace', 'auth.admin_password': ADMIN_PASSWORD, 'agents.builtin': false },
  });
  server = await startServer({ config, logger: createLogger({ level: 'trace', destination: capture }) });
  base = server.url;

  const bad = await http(base, 'POST', '/api/v1/auth/login', { body: { username: 'admin', password: WRONG_PASSWORD } });
  expect(bad.status).toBe(401);
  errorBodies.push(bad);

  const login = await http(base, 'POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  expect(login.status).toBe(200);
  const admin: string = login.json.access_token;
  secrets.push(admin, login.json.refresh_token);

  const reg = await http(base, 'POST', '/api/v1/agents/register', { token: admin, body: { name: 'log probe', type: 'general', capabilities: ['log_probe'], version: '1.0.0' } });
  expect(reg.status).toBe(201);
  secrets.push(reg.json.api_key, reg.json.access_token, reg.json.refresh_token);
  const exchange = await http(base, 'POST', '/api/v1/auth/token', { body: { agent_id: reg.json.agent_id, api_key: reg.json.api_key } });
  expect(exchange.status).toBe(200);
  const agent: string = exchange.json.access_token;
  secrets.push(agent, exchange.json.refresh_token);

  // PHI in task parameters, read back by an authorised caller (that response may hold it).
  const task = await http(base, 'POST', '/api/v1/tasks', {
    token: admin,
    body: { task_type: 'log_probe', required_capabilities: ['log_probe'], parameters: { text: CANARY, patient_id: CANARY_ID, notes: [CANARY] }, max_retries: 0 },
  });
  expect(task.status).toBe(201);
  const detail = await http(base, 'GET', `/api/v1/tasks/${task.json.task_id}`, { token: admin });
  expect(detail.status).toBe(200);
  expect(detail.text).toContain('PHI-CANARY-7f3a9c'); // the authorised response does carry it; logs must not

  // The agent completes it with PHI in the result.
  const { rows } = await server.services.db.query<{ attempt: number }>(
    `UPDATE tasks SET status = 'assigned', assigned_agent = $2, attempt = attempt + 1, assigned_at = now(), lease_expires_at = now() + interval '5 minutes'
     WHERE task_id = $1 AND status = 'pending' RETURNING attempt`, [task.json.task_id, reg.json.agent_id]);
  const attempt = rows[0]?.attempt ?? 1;
  const done = await http(base, 'POST', `/api/v1/tasks/${task.json.task_id}/complete`, { token: agent, body: { attempt, result: { summary: CANARY } } });
  expect(done.status).toBe(200);

  // Refusals that carry the canary or a token in the request: the error bodies must not echo it.
  errorBodies.push(await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'sentiment_analysis', parameters: { text: CANARY }, bogus_field: CANARY } }));
  errorBodies.push(await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'sentiment_analysis', parameters: { text: CANARY }, priority: CANARY } }));
  errorBodies.push(await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: CANARY, parameters: { text: CANARY } } }));
  errorBodies.push(await http(base, 'GET', '/api/v1/tasks', { token: BOGUS_TOKEN }));
  errorBodies.push(await http(base, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: BOGUS_TOKEN } }));
  errorBodies.push(await http(base, 'POST', '/api/v1/auth/token', { body: { agent_id: reg.json.agent_id, api_key: BOGUS_TOKEN } }));
  errorBodies.push(await http(base, 'GET', `/api/v1/tasks?task_type=${encodeURIComponent(CANARY)}`, { token: admin }));
  errorBodies.push(await http(base, 'POST', `/api/v1/tasks/${task.json.task_id}/complete`, { token: agent, body: { attempt: attempt + 5, result: { summary: CANARY } } }));
  // A revoked refresh token reused → security alert path (logs the family, never the token).
  const refreshed = await http(base, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: login.json.refresh_token } });
  expect(refreshed.status).toBe(200);
  secrets.push(refreshed.json.access_token, refreshed.json.refresh_token);
  errorBodies.push(await http(base, 'POST', '/api/v1/auth/refresh', { body: { refresh_token: login.json.refresh_token } }));
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const needles = () => [
  ['PHI canary', 'PHI-CANARY-7f3a9c'], ['patient id', CANARY_ID], ['SSN', '078-05-1120'],
  ...secrets.map((s, i) => [`secret #${i}`, s] as [string, string]),
] as Array<[string, string]>;

describe('logs of a real server session', () => {
  it('were written (the check is not vacuous): request lines with routes, request ids and durations', () => {
    const lines = capture.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => l.message === 'request');
    expect(requests.length).toBeGreaterThanOrEqual(10);
    expect(requests.some((l) => l.route === '/api/v1/tasks/:task_id/complete' && l.status === 200)).toBe(true);
    for (const l of requests) {
      expect(l.level).toMatch(/^(info|error)$/);
      expect(typeof l.request_id).toBe('string');
      expect(typeof l.duration_ms).toBe('number');
      expect(typeof l.time).toBe('string');
    }
  });

  it('never contain the PHI canary, passwords, JWTs, refresh tokens or API keys', () => {
    const out = capture.text;
    for (const [what, needle] of needles()) expect(out.includes(needle), `${what} leaked into the logs`).toBe(false);
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./); // no JWT at all
    expect(out).not.toMatch(/mcp_ak_[A-Za-z0-9_-]{8,}/); // no agent API key at all
  });

  it('error bodies never echo the canary or the tokens', () => {
    expect(errorBodies.length).toBe(10);
    for (const r of errorBodies) {
      expect(r.status, r.text).toBeGreaterThanOrEqual(400);
      expect(typeof r.json?.error?.code).toBe('string');
      for (const [what, needle] of needles()) expect(r.text.includes(needle), `${what} in error body ${r.text}`).toBe(false);
      expect(r.text).not.toMatch(/at .+\.ts:\d+/); // no stack
    }
  });
});

describe('the logger itself', () => {
  it('scrubs sensitive keys at any depth, credential-shaped strings anywhere, and the message', () => {
    const cap = new Capture();
    const log = createLogger({ level: 'info', destination: cap });
    const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4eXoiLCJpYXQiOjE3MDB9.c2lnbmF0dXJlLWJ5dGVz';
    log.info({
      a: { b: { c: { d: { password: 'deep-pass-1', session_token: 'st-0001', list: [{ text: CANARY }], safe: 'kept-value' } } } },
      url: 'postgres://mcp:db-pass-42@db:5432/mcp',
      header: `Bearer ${jwt}`,
      key: 'mcp_ak_AAAABBBBCCCCDDDDEEEE',
      fencing_token: 7,
      task_id: 'task-123',
    }, `login with ${jwt}`);
    log.error({ err: Object.assign(new Error(`failed for Bearer ${jwt}`), { parameters: { text: CANARY } }) }, 'boom');
    const out = cap.text;
    for (const needle of ['deep-pass-1', 'st-0001', 'PHI-CANARY', 'db-pass-42', jwt, 'mcp_ak_AAAA']) expect(out, needle).not.toContain(needle);
    const first = JSON.parse(out.split('\n')[0]!);
    expect(first.a.b.c.d.safe).toBe('kept-value');
    expect(first.a.b.c.d.password).toBe('[REDACTED]');
    expect(first.fencing_token).toBe(7);
    expect(first.task_id).toBe('task-123');
    expect(first.url).toBe('postgres://mcp:[REDACTED]@db:5432/mcp');
    const second = JSON.parse(out.split('\n')[1]!);
    expect(second.err.message).toMatch(/^failed for Bearer \[REDACTED/);
    expect(second.err.parameters).toBe('[REDACTED]');
  });

  it('scrub survives cycles and depth', () => {
    const o: Record<string, unknown> = { name: 'x' };
    o.self = o;
    expect(scrub(o)).toEqual({ name: 'x', self: '[Circular]' });
  });
});
