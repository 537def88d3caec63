/** GET /agents/discover pages like every list (SPEC §2): `limit`, `offset`, and a `pagination` block. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELEGATION_CONFIG, registerAgent, startTestServer, type TestServer } from '../helpers/server.ts';

describe('agent discovery pagination', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ ...DELEGATION_CONFIG });
  });
  afterAll(async () => t?.stop());

  it('takes limit and offset and answers pagination, in one ranking across pages', async () => {
    for (const id of ['disc-a', 'disc-b', 'disc-c']) await registerAgent(t, { agent_id: id, capabilities: ['disc_cap'] });
    const get = (q: string) => t.api('GET', `/api/v1/agents/discover?capabilities=disc_cap${q}`, { token: t.adminToken });
    const all = await get('');
    expect(all.status).toBe(200);
    const ranked = all.body.agents.map((a: { agent_id: string }) => a.agent_id) as string[];
    expect([...ranked].sort()).toEqual(['disc-a', 'disc-b', 'disc-c']);
    expect(all.body.pagination).toEqual({ total: 3, limit: 50, offset: 0, has_more: false, next_offset: null });

    const first = await get('&limit=2');
    expect(first.body.agents.map((a: { agent_id: string }) => a.agent_id)).toEqual(ranked.slice(0, 2));
    expect(first.body).toMatchObject({ count: 2, capabilities: ['disc_cap'], pagination: { total: 3, limit: 2, offset: 0, has_more: true, next_offset: 2 } });
    const second = await get('&limit=2&offset=2');
    expect(second.status).toBe(200);
    expect(second.body.agents.map((a: { agent_id: string }) => a.agent_id)).toEqual(ranked.slice(2));
    expect(second.body.pagination).toEqual({ total: 3, limit: 2, offset: 2, has_more: false, next_offset: null });
    const past = await get('&offset=10');
    expect(past.body).toMatchObject({ agents: [], count: 0, pagination: { total: 3, offset: 10, has_more: false } });
    const bad = await get('&offset=-1');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('VALIDATION_ERROR');
  });
});
