/**
 * The dashboard over real HTTP and Socket.IO: the page and its modules are served under the CSP,
 * and the dashboard's own client module (web/js/client.js — what the page runs) signs in, reads
 * the views' data and receives live events with a real socket.io-client against a real server.
 */
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';
import { DashboardClient, ApiError, topicsFor } from '../../web/js/client.js';

describe('dashboard', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('serves the page, its modules and the Socket.IO client under a CSP that allows only this origin\'s scripts', async () => {
    const page = await fetch(`${t.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    // Served over plain HTTP: no upgrade-insecure-requests, or browsers fetch the scripts over https://.
    expect(page.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/ui/js/app.js"></script>');
    for (const asset of ['/ui/js/app.js', '/ui/js/client.js', '/ui/js/views.js', '/ui/js/live-stats.js', '/ui/vendor/socket.io.esm.min.js']) {
      const r = await fetch(`${t.url}${asset}`);
      expect(r.status, asset).toBe(200);
      expect(r.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect((await r.text()).length).toBeGreaterThan(500);
    }
    expect((await fetch(`${t.url}/ui/style.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const missing = await fetch(`${t.url}/ui/%2e%2e/package.json`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    expect((await fetch(`${t.url}/ui/js/app.js?v=1`)).status).toBe(200);
  });

  it('signs in, reads every view\'s data, acts on dead letters and alerts, and receives live events', async () => {
    const client = new DashboardClient({ baseUrl: t.url, fetch, io });
    await expect(client.login('admin', 'wrong-password-123')).rejects.toMatchObject({ status: 401, code: 'INVALID_CREDENTIALS' });
    const user = await client.login('admin', ADMIN_PASSWORD);
    expect(user).toMatchObject({ username: 'admin', role: 'admin' });

    const events: Array<[string, { task_id?: string }]> = [];
    const states: boolean[] = [];
    client.connect(topicsFor('admin'), (name: string, payload: { task_id?: string }) => events.push([name, payload]), (s: boolean) => states.push(s));
    await waitFor(() => states.includes(true));
    await new Promise((r) => setTimeout(r, 200)); // the subscriptions' acks

    const created = await client.post('/tasks', { task_type: 'dashboard_job', required_capabilities: ['nobody_has_this'], max_retries: 0 });
    await waitFor(() => events.some(([n, p]) => n === 'task:created' && p.task_id === created.task_id));
    const listed = await client.get('/tasks', { task_type: 'dashboard_job', status: 'pending' });
    expect(listed.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([created.task_id]);
    expect((await client.get('/agents', { limit: 200 })).agents).toEqual([]);
    expect(Array.isArray((await client.get('/pipelines', { limit: 50 })).pipelines)).toBe(true);
    expect((await client.get('/audit', { action: 'login', limit: 10 })).entries.length).toBeGreaterThan(0);

    // A dead letter (as a failed task with no retries left becomes one).
    await t.server.services.db.query(`UPDATE tasks SET status = 'failed', dead_letter = true, error = '{"code":"X","message":"m","retryable":false}'::jsonb WHERE task_id = $1`, [created.task_id]);
    const dead = await client.get('/tasks/dead-letter', { limit: 100 });
    expect(dead.tasks.map((x: { task_id: string }) => x.task_id)).toContain(created.task_id);
    await client.post(`/tasks/${created.task_id}/retry`);
    expect((await client.get(`/tasks/${created.task_id}`)).dead_letter).toBe(false);

    const supervisor = await userToken(t, 'supervisor');
    for (let i = 0; i < 20; i++) await t.api('GET', '/api/v1/audit', { token: supervisor }); // 20 denials → an alert
    await waitFor(async () => (await client.get('/security/alerts', { rule: 'authorization_failure_burst' })).alerts.length > 0);
    await waitFor(() => events.some(([n]) => n === 'system:security_alert'));
    const alert = (await client.get('/security/alerts', { rule: 'authorization_failure_burst' })).alerts[0];
    await client.post(`/security/alerts/${alert.alert_id}/ack`);
    expect((await client.get('/security/alerts', { rule: 'authorization_failure_burst' })).alerts[0].acknowledged_by).toBe('user:admin');

    await client.logout();
    await expect(client.get('/agents')).rejects.toBeInstanceOf(ApiError);
  });
});
