/**
 * An agent without a socket (REST-only: claims with POST /tasks/claim) shows `busy` at capacity
 * like a connected one (SPEC §5): its load is its leased tasks in the store, so the detail, the
 * `?status=busy` filter, /metrics and discovery's ranking all see it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELEGATION_CONFIG, registerAgent, startTestServer, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

for (const engine of engines()) {
  describe(`REST-only agents at capacity are busy (${engine.name})`, () => {
    let t: TestServer;
    let store: TestDb;
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ ...DELEGATION_CONFIG }, { db: store.db });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose();
    });

    const ids = (r: { body: { agents: Array<{ agent_id: string }> } }) => r.body.agents.map((a) => a.agent_id);

    it('is busy with its one task claimed, ranks after a free agent, and active again once done', async () => {
      const busy = await registerAgent(t, { agent_id: 'rest-busy', capabilities: ['rest_busy_cap'], max_concurrent_tasks: 1 });
      await registerAgent(t, { agent_id: 'rest-free', capabilities: ['rest_busy_cap'], max_concurrent_tasks: 1 });
      expect((await t.api('POST', '/api/v1/agents/rest-busy/heartbeat', { token: busy.access_token, body: {} })).status).toBe(200);
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'rest_busy_work', required_capabilities: ['rest_busy_cap'] } });
      const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: busy.access_token, body: { max: 1 } });
      expect(claimed.body.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([created.body.task_id]);

      expect((await t.api('GET', '/api/v1/agents/rest-busy', { token: t.adminToken })).body).toMatchObject({ status: 'busy', load: 1 });
      expect((await t.api('GET', '/api/v1/agents/rest-busy/metrics', { token: t.adminToken })).body).toMatchObject({ load: 1 });
      expect(ids(await t.api('GET', '/api/v1/agents?status=busy', { token: t.adminToken }))).toEqual(['rest-busy']);
      expect(ids(await t.api('GET', '/api/v1/agents?status=active&capability=rest_busy_cap', { token: t.adminToken }))).toEqual(['rest-free']);
      const list = await t.api('GET', '/api/v1/agents?capability=rest_busy_cap', { token: t.adminToken });
      expect(list.body.agents.map((a: { agent_id: string; status: string; load: number }) => [a.agent_id, a.status, a.load])).toEqual([['rest-busy', 'busy', 1], ['rest-free', 'active', 0]]);
      expect(ids(await t.api('GET', '/api/v1/agents/discover?capabilities=rest_busy_cap', { token: t.adminToken }))).toEqual(['rest-free', 'rest-busy']);

      const done = await t.api('POST', `/api/v1/tasks/${created.body.task_id as string}/complete`, { token: busy.access_token, body: { attempt: claimed.body.tasks[0].attempt, result: { ok: true } } });
      expect(done.status).toBe(200);
      expect((await t.api('GET', '/api/v1/agents/rest-busy', { token: t.adminToken })).body).toMatchObject({ status: 'active', load: 0 });
      expect(ids(await t.api('GET', '/api/v1/agents?status=busy', { token: t.adminToken }))).toEqual([]);
    });
  });
}
