/**
 * The system topic (SPEC §8): the leader sends `system:health_check` — each dependency's status,
 * no error text — every `log.health_broadcast_ms`; a process sends `system:warning` when the
 * coordination store lost its state and it rebuilds its share.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { connectSocket, emitAck, startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';

describe('system events', () => {
  let t: TestServer;
  let socket: Socket;
  const got: Array<{ name: string; payload: Record<string, unknown> }> = [];
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'log.health_broadcast_ms': 200 });
    // Any role with system:health may watch the system topic; a worker user here.
    socket = await connectSocket(t.wsUrl, await userToken(t, 'worker'), {
      setup: (s) => s.onAny((name: string, payload: Record<string, unknown>) => { if (name.startsWith('system:')) got.push({ name, payload }); }),
    });
    expect(await emitAck(socket, 'subscribe', { topic: 'system' })).toMatchObject({ ok: true });
  });
  afterAll(async () => {
    socket?.close();
    await t?.stop();
  });

  it('sends system:health_check with each dependency\'s status, again and again', async () => {
    await waitFor(() => got.filter((e) => e.name === 'system:health_check').length >= 2, 10_000);
    const [first, second] = got.filter((e) => e.name === 'system:health_check');
    expect(first!.payload).toMatchObject({ status: 'healthy', checks: { database: 'healthy', coordination: 'healthy', external_services: 'healthy' } });
    expect(typeof first!.payload.timestamp).toBe('string');
    expect(second!.payload.seq).toBe((first!.payload.seq as number) + 1);
  });

  it('sends system:warning when the coordination store lost its state', async () => {
    await t.server.services.coord.del('coordination:epoch');
    const warning = await waitFor(() => got.find((e) => e.name === 'system:warning'), 10_000);
    expect(warning.payload).toMatchObject({ component: 'coordination', message: expect.stringContaining('rebuilding') });
  });
});
