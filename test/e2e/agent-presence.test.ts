/**
 * Presence end to end: an agent that stops heartbeating becomes `offline`; a heartbeat brings it
 * back; a process keeps its sockets' presence alive in one batched write.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Socket } from 'socket.io-client';
import { connectSocket, registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

describe('agent presence', () => {
  let t: TestServer;
  beforeAll(async () => {
    // With the built-in agents: they heartbeat like any agent, and stay active.
    t = await startTestServer({ 'agents.builtin': true, 'agents.timeout_seconds': 5, 'agents.rest_timeout_seconds': 5 });
  });
  afterAll(async () => t?.stop());

  it('marks a silent agent offline after the timeout and active again on its next heartbeat', async () => {
    const a = await registerAgent(t, { agent_id: 'silent-agent' });
    const hb = await t.api('POST', '/api/v1/agents/silent-agent/heartbeat', { token: a.access_token, body: { status: 'active' } });
    expect(hb.status).toBe(200);
    const status = async () => (await t.api('GET', '/api/v1/agents/silent-agent', { token: t.adminToken })).body.status as string;
    expect(await status()).toBe('active');
    const started = Date.now();
    await waitFor(async () => (await status()) === 'offline', 20_000, 200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    const all = await t.api<{ agents: Array<{ agent_id: string; builtin: boolean; status: string }> }>('GET', '/api/v1/agents?limit=100', { token: t.adminToken });
    const builtins = all.body.agents.filter((x) => x.builtin);
    expect(builtins.length).toBeGreaterThan(0);
    expect(builtins.map((x) => x.status)).toEqual(builtins.map(() => 'active'));
    const health = await t.api('GET', '/api/v1/agents/silent-agent/health', { token: t.adminToken });
    expect(health.body).toMatchObject({ status: 'unhealthy', agent_status: 'offline' });
    await t.api('POST', '/api/v1/agents/silent-agent/heartbeat', { token: a.access_token, body: {} });
    expect(await status()).toBe('active');
  }, 40_000);

  it('rewrites the presence of all its sockets and the agents they serve in one batched call, none one by one', async () => {
    const agents = await Promise.all(Array.from({ length: 6 }, (_, i) => registerAgent(t, { agent_id: `batch-presence-${i}` })));
    const sockets: Socket[] = [];
    try {
      // Two sockets for the first agent: each socket has its own record, the agent one.
      for (const a of [...agents, agents[0]!]) sockets.push(await connectSocket(t.wsUrl, a.access_token));
      const coord = t.server.services.coord;
      const ids = agents.map((a) => a.agent_id);
      await waitFor(async () => (await coord.getPresenceMany('agent-socket', ids)).every((r) => r !== null));
      // Lose them all (as when Redis restarts empty), then rebuild.
      for (const id of ids) {
        await coord.removePresence('agent-socket', id);
        for (const s of await coord.listPresence(`ws:agent:${id}`)) await coord.removePresence(`ws:agent:${id}`, s.id);
      }
      const many = vi.spyOn(coord, 'setPresenceMany');
      const single = vi.spyOn(coord, 'setPresence');
      await t.server.realtime.rebuildCoordinationState();
      expect(many).toHaveBeenCalledTimes(1);
      const written = many.mock.calls[0]![0];
      expect(written.filter((r) => r.kind === 'agent-socket').map((r) => r.id).sort()).toEqual([...ids].sort());
      expect(written.filter((r) => r.kind.startsWith('ws:')).length).toBe(7);
      // (The built-in agent's own beat may write its record meanwhile: not one of these sockets'.)
      expect(single.mock.calls.filter(([kind, id]) => (kind === 'agent-socket' && ids.includes(id)) || kind.startsWith('ws:'))).toEqual([]);
      many.mockRestore();
      single.mockRestore();
      expect((await coord.getPresenceMany('agent-socket', ids)).map((r) => r?.server)).toEqual(ids.map(() => t.server.realtime.serverId));
      expect((await coord.listPresence(`ws:agent:${ids[0]}`)).map((r) => r.id).sort()).toEqual([sockets[0]!.id, sockets[6]!.id].sort());
    } finally {
      for (const s of sockets) s.close();
    }
  }, 30_000);
});
