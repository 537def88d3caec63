/**
 * A drain can be undone the way it can be asked for (SPEC §5): `PUT /agents/{id} {status:
 * "active"}` ends it (and says `draining: false`), as does a heartbeat reporting `active`, the
 * same as the socket's `agent:status_update`; the agent is then given work again (REST claim, and
 * a socket agent's slot). A `busy` or empty heartbeat leaves the drain as it is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { DELEGATION_CONFIG, connectSocket, registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

for (const engine of engines()) {
  describe(`undoing a drain (${engine.name})`, () => {
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

    const view = async (id: string) => (await t.api('GET', `/api/v1/agents/${id}`, { token: t.adminToken })).body as { status: string; draining: boolean };
    const drain = async (id: string) => {
      const r = await t.api('POST', `/api/v1/agents/${id}/drain`, { token: t.adminToken });
      expect(r.body).toMatchObject({ status: 'inactive', draining: true });
    };
    const task = async (cap: string) => {
      const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: `${cap}_work`, required_capabilities: [cap] } });
      expect(r.status).toBe(201);
      return r.body.task_id as string;
    };

    it('PUT status active ends the drain, says so, and the agent claims work again', async () => {
      const a = await registerAgent(t, { agent_id: 'undrain-rest', capabilities: ['undrain_cap'] });
      await drain('undrain-rest');
      const id = await task('undrain_cap');
      expect((await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1 } })).body.count).toBe(0);
      const put = await t.api('PUT', '/api/v1/agents/undrain-rest', { token: t.adminToken, body: { status: 'active' } });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({ status: 'active', draining: false });
      expect(await view('undrain-rest')).toMatchObject({ status: 'active', draining: false });
      const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1 } });
      expect(claimed.body.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([id]);
      // Another status leaves a drain as it is.
      await drain('undrain-rest');
      expect((await t.api('PUT', '/api/v1/agents/undrain-rest', { token: t.adminToken, body: { status: 'maintenance' } })).body).toMatchObject({ status: 'maintenance', draining: true });
    });

    it('a heartbeat reporting active ends the drain; busy or nothing does not', async () => {
      const a = await registerAgent(t, { agent_id: 'undrain-hb', capabilities: ['undrain_hb_cap'] });
      const hb = (body: Record<string, unknown>) => t.api('POST', '/api/v1/agents/undrain-hb/heartbeat', { token: a.access_token, body });
      await drain('undrain-hb');
      expect((await hb({})).status).toBe(200);
      expect((await hb({ status: 'busy' })).status).toBe(200);
      expect(await view('undrain-hb')).toMatchObject({ status: 'inactive', draining: true });
      expect((await hb({ status: 'active' })).status).toBe(200);
      expect(await view('undrain-hb')).toMatchObject({ status: 'active', draining: false });
      const id = await task('undrain_hb_cap');
      const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1 } });
      expect(claimed.body.tasks.map((x: { task_id: string }) => x.task_id)).toEqual([id]);
    });

    it('a socket agent drained and re-activated over REST is delivered work again', async () => {
      const a = await registerAgent(t, { agent_id: 'undrain-ws', capabilities: ['undrain_ws_cap'] });
      const delivered: string[] = [];
      const socket: Socket = await connectSocket(t.wsUrl, a.access_token, {
        setup: (s) => s.on('task:delegate', (d: { task_id: string }, ack?: (r: unknown) => void) => { delivered.push(d.task_id); ack?.({ ok: true }); }),
      });
      try {
        await waitFor(() => t.server.services.engine.hasSlot('undrain-ws'));
        await drain('undrain-ws');
        const id = await task('undrain_ws_cap');
        await new Promise((r) => setTimeout(r, 300));
        expect(delivered).toEqual([]);
        expect((await t.api('PUT', '/api/v1/agents/undrain-ws', { token: t.adminToken, body: { status: 'active' } })).body).toMatchObject({ status: 'active', draining: false });
        await waitFor(() => delivered.includes(id), 5_000);
        expect(delivered).toEqual([id]);
      } finally {
        socket.close();
      }
    });
  });
}
