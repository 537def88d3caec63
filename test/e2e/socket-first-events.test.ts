/**
 * An event a client sends the moment it is connected is answered: every handler is attached
 * before the server's first await in the connection (with Redis, joining rooms and marking the
 * agent's presence are network round trips, and an event arriving meanwhile used to find no
 * handler — dropped, its ack never called). Twenty agents each send a heartbeat and a user
 * subscribes from inside their `connect` listeners; every ack must come. Redis when reachable,
 * else in-process coordination; marking an agent's socket presence is held back 300 ms (the
 * real call, delayed), so the window is wide on any host.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { DELEGATION_CONFIG, registerAgent, startTestServer, userToken, type TestServer } from '../helpers/server.ts';
import { AGENT_SOCKET_PRESENCE } from '../../src/tasks/index.ts';

const REDIS_URL = process.env.MCP_TEST_REDIS_URL ?? '';

/** Connects and emits `event` from inside the `connect` listener; resolves with the ack, or 'no ack' after 3 s. */
function emitOnConnect(wsUrl: string, token: string, event: string, payload: unknown, sockets: Socket[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = io(`${wsUrl}/mcp/ws`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    s.once('connect', () => {
      s.timeout(3000).emit(event, payload, (err: Error | null, ack: unknown) => resolve(err ? 'no ack' : ack));
    });
    s.once('connect_error', reject);
  });
}

describe(`events sent at once on connect are answered (${REDIS_URL ? 'Redis' : 'in-process'})`, () => {
  let t: TestServer;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    t = await startTestServer({
      ...DELEGATION_CONFIG,
      ...(REDIS_URL ? { 'coordination.redis_url': REDIS_URL, 'coordination.key_prefix': `mcp-first-${randomUUID().slice(0, 8)}:` } : {}),
    });
    const coord = t.server.services.coord;
    const setPresence = coord.setPresence.bind(coord);
    coord.setPresence = async (kind, ...rest) => {
      if (kind === AGENT_SOCKET_PRESENCE) await new Promise((r) => setTimeout(r, 300));
      return setPresence(kind, ...rest);
    };
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await t?.stop();
  });

  it('an agent\'s first heartbeat and a user\'s first subscribe get their acks', async () => {
    const agents = await Promise.all(Array.from({ length: 20 }, (_, i) => registerAgent(t, { agent_id: `first-event-${i}` })));
    const acks = await Promise.all(agents.map((a) => emitOnConnect(t.wsUrl, a.access_token, 'agent:heartbeat', { status: 'active' }, sockets)));
    expect(acks.map((a) => (a as { ok?: boolean }).ok ?? a)).toEqual(agents.map(() => true));
    const supervisor = await userToken(t, 'supervisor');
    const sub = await emitOnConnect(t.wsUrl, supervisor, 'subscribe', { topic: 'tasks' }, sockets);
    expect(sub).toMatchObject({ ok: true });
  });
});
