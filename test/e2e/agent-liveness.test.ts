/**
 * A connected socket is itself a sign of life (SPEC §8: "the seed's client snippet works
 * unchanged", and that snippet never sends `agent:heartbeat`). With a 5 s agent timeout, an agent
 * connected like the README's five-minute tour stays `active` and keeps getting work; it goes
 * offline once its socket closes; the sweep marking it offline while it is connected is undone.
 * PGlite with in-process coordination, and PostgreSQL with Redis when both are reachable.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { DELEGATION_CONFIG, registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

const REDIS_URL = process.env.MCP_TEST_REDIS_URL ?? '';
const setups = engines().map((engine) => ({ engine, redis: engine.name === 'postgres' && REDIS_URL !== '' }));

/** The README's agent, verbatim but for the URL and token: accept, then answer; nothing else. */
function seedSnippetAgent(wsUrl: string, token: string): Promise<{ socket: Socket; seen: string[] }> {
  const seen: string[] = [];
  const socket = io(`${wsUrl}/mcp/ws`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
  socket.on('task:delegate', (task: { task_id: string; attempt: number }, ack?: (r: unknown) => void) => {
    seen.push(task.task_id);
    ack?.({ ok: true });
    socket.emit('task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { label: 'positive' } });
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, seen }));
    socket.once('connect_error', reject);
  });
}

for (const { engine, redis } of setups) {
  describe(`a connected agent without heartbeats stays alive (${engine.name}, ${redis ? 'Redis' : 'in-process'})`, () => {
    let t: TestServer;
    let store: TestDb;
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({
        ...DELEGATION_CONFIG, 'agents.timeout_seconds': 5, 'agents.rest_timeout_seconds': 5,
        ...(redis ? { 'coordination.redis_url': REDIS_URL, 'coordination.key_prefix': `mcp-liveness-${randomUUID().slice(0, 8)}:` } : {}),
      }, { db: store.db });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose();
    });

    const agentView = async (id: string) => (await t.api('GET', `/api/v1/agents/${id}`, { token: t.adminToken })).body as { status: string; system_metrics: Record<string, number> | null; last_heartbeat: string };

    it('stays active past the timeout and is given the next task; offline once its socket closes', async () => {
      const a = await registerAgent(t, { agent_id: 'snippet-agent', capabilities: ['liveness_cap'] });
      const { socket, seen } = await seedSnippetAgent(t.wsUrl, a.access_token);
      try {
        // One REST heartbeat with metrics (after the connection's own), then silence: what it reported is kept by the refresh.
        await waitFor(() => t.server.services.engine.hasSlot('snippet-agent'));
        expect((await t.api('POST', '/api/v1/agents/snippet-agent/heartbeat', { token: a.access_token, body: { system_metrics: { cpu_usage: 42 } } })).status).toBe(200);
        const statuses = new Set<string>();
        const until = Date.now() + 9_000; // nearly twice the timeout, with the sweep running every 100 ms
        while (Date.now() < until) {
          statuses.add((await agentView('snippet-agent')).status);
          await new Promise((r) => setTimeout(r, 250));
        }
        expect([...statuses]).toEqual(['active']);
        const view = await agentView('snippet-agent');
        expect(view.system_metrics).toEqual({ cpu_usage: 42 });
        expect(Date.now() - Date.parse(view.last_heartbeat)).toBeLessThan(5_000);
        const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'liveness_work', required_capabilities: ['liveness_cap'], parameters: { text: 'hi' } } });
        expect(created.status).toBe(201);
        const task = await waitFor(async () => {
          const r = (await t.api('GET', `/api/v1/tasks/${created.body.task_id as string}`, { token: t.adminToken })).body as { status: string; assigned_agent: string };
          return r.status === 'completed' ? r : null;
        }, 10_000, 100);
        expect(task.assigned_agent).toBe('snippet-agent');
        expect(seen).toEqual([created.body.task_id]);
      } finally {
        socket.close();
      }
      // Not immortal: without its socket the agent is offline after the timeout.
      const closedAt = Date.now();
      await waitFor(async () => (await agentView('snippet-agent')).status === 'offline', 15_000, 200);
      expect(Date.now() - closedAt).toBeGreaterThanOrEqual(2_000);
    }, 45_000);

    it('a connected agent marked offline by the sweep comes straight back', async () => {
      const a = await registerAgent(t, { agent_id: 'revived-agent', capabilities: ['revive_cap'] });
      const { socket, seen } = await seedSnippetAgent(t.wsUrl, a.access_token);
      try {
        await waitFor(async () => (await agentView('revived-agent')).status === 'active');
        // What the offline sweep does when the agent's presence is gone (a coordination store that restarted empty).
        await t.server.services.coord.removePresence('agent', 'revived-agent');
        await t.server.services.agents.setStatus('revived-agent', 'offline');
        await waitFor(async () => (await agentView('revived-agent')).status === 'active', 5_000, 50);
        const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'revive_work', required_capabilities: ['revive_cap'] } });
        await waitFor(() => seen.includes(created.body.task_id as string), 5_000);
        expect(await t.server.services.coord.getPresence('agent', 'revived-agent')).toMatchObject({ transport: 'ws' });
      } finally {
        socket.close();
      }
    }, 30_000);
  });
}
