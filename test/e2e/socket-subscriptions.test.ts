/**
 * Socket subscriptions deliver what they ack (SPEC §8) and refuse what REST refuses (SPEC §3):
 * an id spelled in upper case joins the room events are sent to (UUIDs are lower-case), and a
 * pipeline that does not exist answers PIPELINE_NOT_FOUND as a task or agent does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { DELEGATION_CONFIG, connectSocket, emitAck, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

for (const engine of engines()) {
  describe(`socket subscriptions (${engine.name})`, () => {
    let t: TestServer;
    let store: TestDb;
    let socket: Socket;
    const events: Array<{ name: string; payload: Record<string, unknown> }> = [];
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ ...DELEGATION_CONFIG }, { db: store.db });
      socket = await connectSocket(t.wsUrl, t.adminToken);
      socket.onAny((name: string, payload: Record<string, unknown>) => events.push({ name, payload }));
    });
    afterAll(async () => {
      socket?.close();
      await t?.stop();
      await store?.dispose();
    });

    it('a task id in upper case joins the task\'s room and gets its events', async () => {
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'nobody_does_this', required_capabilities: ['nobody_cap'] } });
      expect(created.status, created.text).toBe(201);
      const id = created.body.task_id as string;
      const ack = await emitAck(socket, 'subscribe', { task_id: id.toUpperCase() });
      expect(ack).toEqual({ ok: true, room: `task:${id}` });
      expect((await t.api('POST', `/api/v1/tasks/${id}/cancel`, { token: t.adminToken, body: {} })).status).toBe(200);
      const ev = await waitFor(() => events.find((e) => e.name === 'task:cancelled' && e.payload.task_id === id), 5_000);
      expect(ev.payload).toMatchObject({ task_id: id, seq: expect.any(Number) });
      expect(await emitAck(socket, 'unsubscribe', { task_id: id.toUpperCase() })).toEqual({ ok: true, room: `task:${id}` });
    });

    it('a socket can leave the room of a task that is gone (purged): unsubscribe answers ok and leaves it', async () => {
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'nobody_does_this', required_capabilities: ['nobody_cap'] } });
      const id = created.body.task_id as string;
      expect(await emitAck(socket, 'subscribe', { task_id: id })).toEqual({ ok: true, room: `task:${id}` });
      const inRoom = async () => (await t.server.realtime.io.of('/mcp/ws').in(`task:${id}`).fetchSockets()).length;
      expect(await inRoom()).toBe(1);
      await store.db.query('DELETE FROM task_events WHERE task_id = $1', [id]);
      await store.db.query('DELETE FROM tasks WHERE task_id = $1', [id]);
      expect(await emitAck(socket, 'unsubscribe', { task_id: id })).toEqual({ ok: true, room: `task:${id}` });
      expect(await inRoom()).toBe(0);
    });

    it('a pipeline that does not exist is PIPELINE_NOT_FOUND; an existing one, in upper case, delivers', async () => {
      for (const pipeline_id of ['abc', '01900000-0000-7000-8000-00000000abcd']) {
        const refused = await emitAck(socket, 'subscribe', { pipeline_id });
        expect(refused, pipeline_id).toMatchObject({ ok: false, error: { code: 'PIPELINE_NOT_FOUND' } });
      }
      const created = await t.api('POST', '/api/v1/pipelines', { token: t.adminToken, body: { template: 'techdeck', input_data: { format: 'text', content: 'Client: I could not sleep.' } } });
      expect(created.status).toBe(201);
      const id = created.body.pipeline_id as string;
      expect(await emitAck(socket, 'subscribe', { pipeline_id: id.toUpperCase() })).toEqual({ ok: true, room: `pipeline:${id}` });
      expect((await t.api('POST', `/api/v1/pipelines/${id}/cancel`, { token: t.adminToken, body: {} })).status).toBe(200);
      const ev = await waitFor(() => events.find((e) => e.name === 'pipeline:failed' && e.payload.pipeline_id === id), 5_000);
      expect(ev.payload).toMatchObject({ pipeline_id: id, status: 'cancelled' });
    });
  });
}
