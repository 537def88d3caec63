/**
 * `sort=field:asc|desc` on the lists that lacked it (SPEC §2): GET /agents, /users, /security/alerts and
 * /tasks/dead-letter return their rows in the order asked, keep their default order without
 * it, and refuse an unknown sort with 400 VALIDATION_ERROR.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAgent, startTestServer, type TestServer } from '../helpers/server.ts';

describe('list sorting', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 100000, 'limits.task_create_per_min': 100000, 'limits.register_per_min': 100000 });
  });
  afterAll(async () => t?.stop());

  const get = async (path: string) => t.api('GET', path, { token: t.adminToken });
  const expectBadSort = async (path: string) => {
    for (const bad of ['bogus', 'name', 'agent_id:asc', 'created_at:up', 'password_hash:asc', 'priority;DROP TABLE tasks:asc']) {
      const r = await get(`${path}${path.includes('?') ? '&' : '?'}sort=${encodeURIComponent(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.error.code, bad).toBe('VALIDATION_ERROR');
    }
  };

  it('GET /agents sorts by registered_at, name, status and score', async () => {
    // Registered in this order; names, statuses and scores each order them differently.
    const spec = [
      { agent_id: 'sort-a1', name: 'Charlie', status: 'maintenance', completed: 1, failed: 1 }, // score 0.65
      { agent_id: 'sort-a2', name: 'Alpha', status: 'active', completed: 1, failed: 3 }, // 0.475
      { agent_id: 'sort-a3', name: 'Bravo', status: 'inactive', completed: 4, failed: 0 }, // 1
    ];
    for (const s of spec) {
      await registerAgent(t, { agent_id: s.agent_id, name: s.name, capabilities: ['sort_cap'] });
      await t.server.services.db.query(`UPDATE agents SET status = $2, tasks_completed = $3, tasks_failed = $4, total_response_ms = 0 WHERE agent_id = $1`, [s.agent_id, s.status, s.completed, s.failed]);
    }
    const ids = async (query: string) => {
      const r = await get(`/api/v1/agents?capability=sort_cap${query}`);
      expect(r.status, query).toBe(200);
      return (r.body.agents as Array<{ agent_id: string }>).map((a) => a.agent_id);
    };
    expect(await ids('')).toEqual(['sort-a1', 'sort-a2', 'sort-a3']);
    expect(await ids('&sort=registered_at:asc')).toEqual(['sort-a1', 'sort-a2', 'sort-a3']);
    expect(await ids('&sort=registered_at:desc')).toEqual(['sort-a3', 'sort-a2', 'sort-a1']);
    expect(await ids('&sort=name:asc')).toEqual(['sort-a2', 'sort-a3', 'sort-a1']);
    expect(await ids('&sort=name:desc')).toEqual(['sort-a1', 'sort-a3', 'sort-a2']);
    expect(await ids('&sort=status:asc')).toEqual(['sort-a2', 'sort-a3', 'sort-a1']);
    expect(await ids('&sort=status:desc')).toEqual(['sort-a1', 'sort-a3', 'sort-a2']);
    expect(await ids('&sort=score:asc')).toEqual(['sort-a2', 'sort-a1', 'sort-a3']);
    expect(await ids('&sort=score:desc')).toEqual(['sort-a3', 'sort-a1', 'sort-a2']);
    // Paged in the sorted order, with the total of all matches.
    const page = await get('/api/v1/agents?capability=sort_cap&sort=score:desc&limit=1&offset=1');
    expect(page.body.agents.map((a: { agent_id: string }) => a.agent_id)).toEqual(['sort-a1']);
    expect(page.body.pagination).toMatchObject({ total: 3, limit: 1, offset: 1, has_more: true });
    // With a status filter (filtered views) the order holds too.
    await t.server.services.db.query(`UPDATE agents SET status = 'inactive' WHERE agent_id = 'sort-a1'`);
    expect(await ids('&status=inactive&sort=name:asc')).toEqual(['sort-a3', 'sort-a1']);
    expect(await ids('&status=inactive&sort=name:desc')).toEqual(['sort-a1', 'sort-a3']);
    expect(await ids('&status=inactive&sort=score:asc')).toEqual(['sort-a1', 'sort-a3']);
    await expectBadSort('/api/v1/agents');
  });

  it('GET /users sorts by created_at and username', async () => {
    const names = ['sort-user-m', 'sort-user-z', 'sort-user-a']; // created in this order
    for (const username of names) {
      const r = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password: 'password-for-tests-1', role: 'worker' } });
      expect(r.status).toBe(201);
    }
    const order = async (query: string) => {
      const r = await get(`/api/v1/users?limit=1000${query}`);
      expect(r.status, query).toBe(200);
      return (r.body.users as Array<{ username: string }>).map((u) => u.username).filter((u) => u.startsWith('sort-user-'));
    };
    expect(await order('')).toEqual(names);
    expect(await order('&sort=created_at:asc')).toEqual(names);
    expect(await order('&sort=created_at:desc')).toEqual([...names].reverse());
    expect(await order('&sort=username:asc')).toEqual(['sort-user-a', 'sort-user-m', 'sort-user-z']);
    expect(await order('&sort=username:desc')).toEqual(['sort-user-z', 'sort-user-m', 'sort-user-a']);
    const first = await get('/api/v1/users?sort=created_at:asc&limit=1');
    expect(first.body.users.map((u: { username: string }) => u.username)).toEqual(['admin']);
    await expectBadSort('/api/v1/users');
  });

  it('GET /tasks/dead-letter sorts by updated_at, created_at and priority', async () => {
    // Three dead-lettered tasks: created t1, t2, t3; updated t2, t3, t1; priorities 3, 9, 5.
    const spec = [{ priority: 3, created: 30, updated: 1 }, { priority: 9, created: 20, updated: 3 }, { priority: 5, created: 10, updated: 2 }];
    const ids: string[] = [];
    for (const s of spec) {
      const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'sort_dl', required_capabilities: ['nobody_has_this'], priority: s.priority } });
      expect(r.status).toBe(201);
      ids.push(r.body.task_id as string);
      await t.server.services.db.query(
        `UPDATE tasks SET status = 'failed', dead_letter = true, created_at = now() - make_interval(mins => $2), updated_at = now() - make_interval(mins => $3) WHERE task_id = $1`,
        [r.body.task_id, s.created, s.updated]);
    }
    const [t1, t2, t3] = ids as [string, string, string];
    const order = async (query: string) => {
      const r = await get(`/api/v1/tasks/dead-letter?limit=1000${query}`);
      expect(r.status, query).toBe(200);
      return (r.body.tasks as Array<{ task_id: string }>).map((x) => x.task_id).filter((id) => ids.includes(id));
    };
    expect(await order('')).toEqual([t1, t3, t2]); // updated_at desc, as before
    expect(await order('&sort=updated_at:desc')).toEqual([t1, t3, t2]);
    expect(await order('&sort=updated_at:asc')).toEqual([t2, t3, t1]);
    expect(await order('&sort=created_at:asc')).toEqual([t1, t2, t3]);
    expect(await order('&sort=created_at:desc')).toEqual([t3, t2, t1]);
    expect(await order('&sort=priority:asc')).toEqual([t1, t3, t2]);
    expect(await order('&sort=priority:desc')).toEqual([t2, t3, t1]);
    await expectBadSort('/api/v1/tasks/dead-letter');
  });

  it('GET /security/alerts sorts by created_at (newest first by default) and severity', async () => {
    const spec: Array<[string, string, string]> = [
      ['0190a0a0-0000-7000-8000-000000000001', 'high', '2026-01-01T00:00:01Z'],
      ['0190a0a0-0000-7000-8000-000000000002', 'low', '2026-01-01T00:00:02Z'],
      ['0190a0a0-0000-7000-8000-000000000003', 'critical', '2026-01-01T00:00:03Z'],
    ];
    for (const [id, severity, at] of spec) {
      await t.server.services.db.query(`INSERT INTO security_alerts (alert_id, rule, severity, message, created_at) VALUES ($1, 'sort_rule', $2, 'm', $3)`, [id, severity, at]);
    }
    const order = async (query: string) => {
      const r = await get(`/api/v1/security/alerts?rule=sort_rule${query}`);
      expect(r.status, query).toBe(200);
      return (r.body.alerts as Array<{ alert_id: string }>).map((a) => a.alert_id.slice(-1));
    };
    expect(await order('')).toEqual(['3', '2', '1']);
    expect(await order('&sort=created_at:asc')).toEqual(['1', '2', '3']);
    expect(await order('&sort=severity:desc')).toEqual(['3', '1', '2']);
    expect(await order('&sort=severity:asc')).toEqual(['2', '1', '3']);
    await expectBadSort('/api/v1/security/alerts');
  });
});
