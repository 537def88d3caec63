/**
 * Every role against every route (SPEC §3): a caller lacking the route's permission gets 403
 * INSUFFICIENT_PERMISSIONS; a caller holding it never does (it may get 2xx, 400, 404, 409).
 * Expectations come from the RBAC table, so the table and the routes cannot drift apart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasPermission, type Permission, type Role } from '../../src/auth/index.ts';
import { registerAgent, startTestServer, userToken, type TestServer } from '../helpers/server.ts';

interface RouteCase {
  method: string;
  path: string;
  permission: Permission | null;
  body?: unknown;
}

const TASK = '01900000-0000-7000-8000-00000000abcd';
const ROUTES: RouteCase[] = [
  { method: 'GET', path: '/api/v1/agents', permission: 'agent:read' },
  { method: 'GET', path: '/api/v1/agents/discover?capabilities=a', permission: 'agent:read' },
  { method: 'GET', path: '/api/v1/agents/matrix-target', permission: 'agent:read' },
  { method: 'GET', path: '/api/v1/agents/matrix-target/health', permission: 'agent:read' },
  { method: 'GET', path: '/api/v1/agents/matrix-target/metrics', permission: 'agent:read' },
  { method: 'POST', path: '/api/v1/agents/register', permission: 'agent:register', body: { name: 'm', type: 'general', capabilities: ['a'], version: '1.0.0' } },
  { method: 'PUT', path: '/api/v1/agents/matrix-target', permission: 'agent:manage', body: { name: 'renamed' } },
  { method: 'POST', path: '/api/v1/agents/matrix-target/drain', permission: 'agent:manage' },
  { method: 'DELETE', path: '/api/v1/agents/no-such-agent', permission: 'agent:manage' },
  { method: 'POST', path: '/api/v1/agents/enrollment-tokens', permission: 'agent:register', body: { uses: 1, ttl_seconds: 60 } },
  { method: 'GET', path: '/api/v1/agents/enrollment-tokens', permission: 'agent:register' },
  { method: 'DELETE', path: `/api/v1/agents/enrollment-tokens/${TASK}`, permission: 'agent:register' },
  { method: 'POST', path: '/api/v1/tasks', permission: 'task:create', body: { task_type: 'pii_detection' } },
  { method: 'POST', path: '/api/v1/tasks/batch', permission: 'task:create', body: { tasks: [{ task_type: 'pii_detection' }] } },
  { method: 'GET', path: '/api/v1/tasks', permission: 'task:read' },
  { method: 'GET', path: `/api/v1/tasks/${TASK}`, permission: 'task:read' },
  { method: 'GET', path: '/api/v1/tasks/dead-letter', permission: 'task:manage' },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/cancel`, permission: 'task:manage' },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/retry`, permission: 'task:manage' },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/delegate`, permission: 'task:manage' },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/progress`, permission: 'task:execute', body: { attempt: 1, progress: 0.5 } },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/complete`, permission: 'task:execute', body: { attempt: 1, result: {} } },
  { method: 'POST', path: `/api/v1/tasks/${TASK}/fail`, permission: 'task:execute', body: { attempt: 1, error: { code: 'X', message: 'x', retryable: false } } },
  { method: 'GET', path: '/api/v1/users', permission: 'user:manage' },
  { method: 'POST', path: '/api/v1/users', permission: 'user:manage', body: { username: 'matrix-x', password: 'short', role: 'worker' } },
  { method: 'GET', path: `/api/v1/users/${TASK}`, permission: 'user:manage' },
  { method: 'PATCH', path: `/api/v1/users/${TASK}`, permission: 'user:manage', body: { disabled: true } },
  { method: 'DELETE', path: `/api/v1/users/${TASK}`, permission: 'user:manage' },
  { method: 'GET', path: '/api/v1/health/detailed', permission: 'system:health' },
  { method: 'POST', path: '/api/v1/ai/analyze', permission: 'task:create', body: { task_type: 'pii_detection', input_data: { text: 'Call 555-123-4567.' } } },
  { method: 'GET', path: '/api/v1/ai/providers', permission: 'system:health' },
  { method: 'GET', path: '/api/v1/discovery/services', permission: 'system:health' },
  { method: 'GET', path: '/api/v1/fhe/params', permission: 'task:read' },
  { method: 'POST', path: '/api/v1/fhe/aggregate', permission: 'task:create', body: { operation: 'sum', ciphertexts: ['eA=='] } },
  { method: 'GET', path: '/api/v1/auth/me', permission: null },
];

describe('permission matrix', () => {
  let t: TestServer;
  const callers: Array<{ label: string; role: Role; token: string }> = [];
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 100000, 'limits.register_per_min': 100000, 'limits.task_create_per_min': 100000 });
    await registerAgent(t, { agent_id: 'matrix-target' });
    for (const role of ['worker', 'supervisor', 'admin', 'system'] as Role[]) callers.push({ label: `user:${role}`, role, token: await userToken(t, role) });
    callers.push({ label: 'agent:worker', role: 'worker', token: (await registerAgent(t, { agent_id: 'matrix-worker-agent' })).access_token });
    callers.push({ label: 'agent:supervisor', role: 'supervisor', token: (await registerAgent(t, { agent_id: 'matrix-sup-agent', role: 'supervisor' })).access_token });
  });
  afterAll(async () => t?.stop());

  it('answers every route × role per the RBAC table', async () => {
    const mismatches: string[] = [];
    let checked = 0;
    for (const route of ROUTES) {
      for (const c of callers) {
        const r = await t.api(route.method, route.path, { token: c.token, body: route.body });
        const allowed = route.permission === null || hasPermission(c.role, route.permission);
        const denied = r.status === 403 && r.body?.error?.code === 'INSUFFICIENT_PERMISSIONS';
        checked++;
        if (r.status === 401 || r.status >= 500 || allowed === denied) mismatches.push(`${c.label} ${route.method} ${route.path} → ${r.status} ${r.body?.error?.code ?? ''} (expected ${allowed ? 'allowed' : 'denied'})`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(ROUTES.length * callers.length);
  });

  it('lets an agent update and drain itself without agent:manage', async () => {
    const self = await registerAgent(t, { agent_id: 'matrix-self' });
    expect((await t.api('PUT', '/api/v1/agents/matrix-self', { token: self.access_token, body: { metadata: { zone: 'a' } } })).status).toBe(200);
    const drained = await t.api('POST', '/api/v1/agents/matrix-self/drain', { token: self.access_token });
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ status: 'inactive', draining: true });
    expect((await t.api('POST', '/api/v1/agents/matrix-target/drain', { token: self.access_token })).status).toBe(403);
  });

  it('grants only roles within the caller\'s own permissions: system cannot make an admin, admin can', async () => {
    const agentBody = (agent_id: string, role?: Role) => ({ agent_id, name: agent_id, type: 'general', capabilities: ['a'], version: '1.0.0', ...(role ? { role } : {}) });
    const systemUser = callers.find((c) => c.label === 'user:system')!.token;
    const systemAgent = (await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, body: agentBody('matrix-system-agent', 'system') })).body.access_token as string;
    expect(systemAgent).toEqual(expect.any(String));
    for (const [label, token] of [['user', systemUser], ['agent', systemAgent]] as const) {
      // Register with role admin: refused, nothing created.
      const reg = await t.api('POST', '/api/v1/agents/register', { token, body: agentBody(`escalate-${label}`, 'admin') });
      expect(reg.status, label).toBe(403);
      expect(reg.body.error.code).toBe('INSUFFICIENT_PERMISSIONS');
      expect(reg.body.access_token).toBeUndefined();
      expect((await t.api('GET', `/api/v1/agents/escalate-${label}`, { token: t.adminToken })).status).toBe(404);
      // An enrollment token for admin: refused.
      const et = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token, body: { uses: 1, ttl_seconds: 60, role: 'admin' } });
      expect(et.status, label).toBe(403);
      expect(et.body.error.code).toBe('INSUFFICIENT_PERMISSIONS');
      expect(et.body.enrollment_token).toBeUndefined();
      // Changing an agent's role to admin: refused, role unchanged.
      const put = await t.api('PUT', '/api/v1/agents/matrix-target', { token, body: { role: 'admin' } });
      expect(put.status, label).toBe(403);
      expect(put.body.error.code).toBe('INSUFFICIENT_PERMISSIONS');
      expect((await t.api('GET', '/api/v1/agents/matrix-target', { token: t.adminToken })).body.role).toBe('worker');
      // The normal path still works: no role (worker), or a role the caller holds all of.
      const plain = await t.api('POST', '/api/v1/agents/register', { token, body: agentBody(`plain-${label}`) });
      expect(plain.status, label).toBe(201);
      expect(plain.body.permissions).toEqual(['task:execute', 'task:read', 'agent:read', 'system:health']);
      const sup = await t.api('POST', '/api/v1/agents/register', { token, body: agentBody(`sup-${label}`, 'supervisor') });
      expect(sup.status, label).toBe(201);
      const workerEt = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token, body: { uses: 1, ttl_seconds: 60 } });
      expect(workerEt.status, label).toBe(201);
      expect(workerEt.body.role).toBe('worker');
      const sysEt = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token, body: { uses: 1, ttl_seconds: 60, role: 'system' } });
      expect(sysEt.status, label).toBe(201);
      const toSup = await t.api('PUT', `/api/v1/agents/plain-${label}`, { token, body: { role: 'supervisor' } });
      expect(toSup.status, label).toBe(200);
      expect(toSup.body.role).toBe('supervisor');
    }
    // An admin may grant any role, admin included.
    const adminReg = await t.api('POST', '/api/v1/agents/register', { token: t.adminToken, body: agentBody('matrix-admin-agent', 'admin') });
    expect(adminReg.status).toBe(201);
    expect(adminReg.body.permissions).toEqual(expect.arrayContaining(['user:manage', 'system:config']));
    const adminEt = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: t.adminToken, body: { uses: 1, ttl_seconds: 60, role: 'admin' } });
    expect(adminEt.status).toBe(201);
    expect(adminEt.body.role).toBe('admin');
    const promote = await t.api('PUT', '/api/v1/agents/plain-user', { token: t.adminToken, body: { role: 'admin' } });
    expect(promote.status).toBe(200);
    expect(promote.body.role).toBe('admin');
  });

  it('needs no token for the public endpoints and a token for the rest', async () => {
    for (const path of ['/api/v1/health', '/api/v1/live', '/api/v1/ready', '/openapi.json', '/.well-known/jwks.json']) {
      expect((await t.api('GET', path)).status, path).toBe(200);
    }
    const docs = await fetch(`${t.url}/docs`, { redirect: 'manual' });
    expect([200, 302]).toContain(docs.status);
    for (const route of ROUTES) {
      const r = await t.api(route.method, route.path, { body: route.body });
      expect(r.status, route.path).toBe(401);
      expect(r.body.error.code).toBe('MISSING_AUTHENTICATION');
    }
  });

  it('documents every route in /openapi.json from the validating schemas', async () => {
    const spec = (await t.api('GET', '/openapi.json')).body;
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/api/v1/tasks', '/api/v1/agents/register', '/api/v1/tasks/{task_id}']));
    const create = spec.paths['/api/v1/tasks'].post;
    expect(create.requestBody.content['application/json'].schema.properties.priority).toBeTruthy();
  });
});
