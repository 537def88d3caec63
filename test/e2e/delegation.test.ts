/**
 * Real-time delegation end to end: real server, real socket.io-client agents (SPEC §6, §8).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { connectSocket, DELEGATION_CONFIG, emitAck, registerAgent, type RegisteredAgent, startTestServer, type TestServer, userToken, waitFor } from '../helpers/server.ts';

interface Delegated { task_id: string; attempt: number; task_type: string; parameters: Record<string, unknown>; metadata: { timeout_seconds: number } }

/** An agent socket that records deliveries and cancellations; `auto` decides how it answers. */
async function agentSocket(t: TestServer, agent: RegisteredAgent, auto: 'ack' | 'none' | 'complete' = 'ack') {
  const delivered: Delegated[] = [];
  const cancels: Array<{ task_id: string; reason: string }> = [];
  const socket = await connectSocket(t.wsUrl, agent.access_token, {
    setup: (s) => {
      s.on('task:delegate', (task: Delegated, ack?: (r: unknown) => void) => {
        delivered.push(task);
        if (auto !== 'none') ack?.({ ok: true });
        if (auto === 'complete') s.emit('task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { by: agent.agent_id } });
      });
      s.on('task:cancel', (c: { task_id: string; reason: string }) => cancels.push(c));
    },
  });
  return { socket, delivered, cancels };
}

const task = async (t: TestServer, body: Record<string, unknown>) => {
  const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body });
  expect(r.status).toBe(201);
  return r.body.task_id as string;
};
const getTask = async (t: TestServer, id: string) => (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body;

describe('delegation over Socket.IO', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(DELEGATION_CONFIG);
  });
  afterAll(async () => t?.stop());

  it('delegate → accept → progress → result → completed, with subscriber events', async () => {
    const a = await registerAgent(t, { agent_id: 'flow-agent', capabilities: ['flow_cap'] });
    const { socket, delivered } = await agentSocket(t, a, 'ack');
    const sup = await connectSocket(t.wsUrl, await userToken(t, 'supervisor'));
    const events: Array<{ name: string; seq: number }> = [];
    sup.onAny((name: string, payload: { seq: number }) => { if (name.startsWith('task:')) events.push({ name, seq: payload.seq }); });
    expect(await emitAck(sup, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: true });
    const id = await task(t, { task_type: 'flow_work', required_capabilities: ['flow_cap'], parameters: { text: 'hi' } });
    const d = await waitFor(() => delivered.find((x) => x.task_id === id));
    expect(d).toMatchObject({ attempt: 1, task_type: 'flow_work', parameters: { text: 'hi' }, metadata: { timeout_seconds: 300 } });
    await waitFor(async () => (await getTask(t, id)).status === 'running');
    expect(await emitAck(socket, 'task:progress', { task_id: id, attempt: 1, progress: 0.5, message: 'half' })).toMatchObject({ ok: true });
    expect((await getTask(t, id)).progress).toBe(0.5);
    expect(await emitAck(socket, 'task:result', { task_id: id, attempt: 1, success: true, data: { score: 0.9 } })).toMatchObject({ ok: true, status: 'completed' });
    const done = await getTask(t, id);
    expect(done).toMatchObject({ status: 'completed', result: { score: 0.9 }, assigned_agent: 'flow-agent', attempt: 1, progress: 1 });
    expect(done.history.map((h: { from_status: string | null; to_status: string; attempt: number; agent_id: string | null }) => [h.from_status, h.to_status, h.attempt, h.agent_id])).toEqual([
      [null, 'pending', 0, null], ['pending', 'assigned', 1, 'flow-agent'], ['assigned', 'running', 1, 'flow-agent'], ['running', 'completed', 1, 'flow-agent']]);
    const times = done.history.map((h: { at: string }) => Date.parse(h.at));
    expect(times).toEqual([...times].sort((a, b) => a - b)); // in event order
    await waitFor(() => events.some((e) => e.name === 'task:completed'));
    expect(events.map((e) => e.name)).toEqual(['task:created', 'task:assigned', 'task:progress_updated', 'task:completed']);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    // Every PHI access of this task is in the audit log: the creation, the delivery to the agent,
    // the result it wrote, and the admin's read above.
    const audit = await waitFor(async () => {
      const r = await t.api('GET', `/api/v1/audit?resource_type=task&resource_id=${id}&limit=50`, { token: t.adminToken });
      const entries = r.body.entries as Array<{ action: string; actor: { type: string; id: string }; fields: string[] }>;
      return entries.some((e) => e.actor.type === 'agent' && e.action !== 'update') && entries;
    });
    expect(audit.find((e) => e.action === 'create')?.fields).toEqual(['parameters']);
    expect(audit.find((e) => e.action === 'update')).toMatchObject({ actor: { type: 'agent', id: 'flow-agent' }, fields: ['result'] });
    expect(audit.some((e) => e.action === 'read' && e.actor.type === 'user')).toBe(true);
    const again = await emitAck(socket, 'task:result', { task_id: id, attempt: 1, success: true, data: { score: 0.1 } });
    expect(again).toMatchObject({ ok: true, duplicate: true });
    expect((await getTask(t, id)).result).toEqual({ score: 0.9 });
    socket.close();
    sup.close();
  });

  it('routes by capability and spreads work by strategy', async () => {
    const x = await agentSocket(t, await registerAgent(t, { agent_id: 'route-x', capabilities: ['cap_x'], max_concurrent_tasks: 10 }), 'complete');
    const y1 = await agentSocket(t, await registerAgent(t, { agent_id: 'route-y1', capabilities: ['cap_y'], max_concurrent_tasks: 10 }), 'none');
    const y2 = await agentSocket(t, await registerAgent(t, { agent_id: 'route-y2', capabilities: ['cap_y'], max_concurrent_tasks: 10 }), 'none');
    await task(t, { task_type: 'wx', required_capabilities: ['cap_x'] });
    for (let i = 0; i < 6; i++) await task(t, { task_type: 'wy', required_capabilities: ['cap_y'], strategy: 'round_robin' });
    await waitFor(() => x.delivered.length === 1 && y1.delivered.length + y2.delivered.length === 6);
    expect(x.delivered[0]!.task_type).toBe('wx');
    expect(y1.delivered.every((d) => d.task_type === 'wy')).toBe(true);
    expect(y1.delivered.length).toBe(3);
    expect(y2.delivered.length).toBe(3);
    for (const s of [x, y1, y2]) s.socket.close();
  });

  it('hands out the highest priority first, with aging so old low-priority work is not starved', async () => {
    const ids = {
      low: await task(t, { task_type: 'prio', required_capabilities: ['cap_prio'], priority: 'low' }),
      critical: await task(t, { task_type: 'prio', required_capabilities: ['cap_prio'], priority: 'critical' }),
      medium: await task(t, { task_type: 'prio', required_capabilities: ['cap_prio'] }),
      aged: await task(t, { task_type: 'prio', required_capabilities: ['cap_prio'], priority: 1 }),
    };
    await t.server.services.db.query(`UPDATE tasks SET created_at = now() - interval '30 minutes' WHERE task_id = $1`, [ids.aged]);
    const a = await registerAgent(t, { agent_id: 'prio-agent', capabilities: ['cap_prio'], max_concurrent_tasks: 1 });
    const { socket, delivered } = await agentSocket(t, a, 'complete');
    await waitFor(() => delivered.length === 4);
    // critical 10 > aged 1+5 = 6 > medium 5 > low 2
    expect(delivered.map((d) => d.task_id)).toEqual([ids.critical, ids.aged, ids.medium, ids.low]);
    socket.close();
  });

  it('refuses a stale attempt and changes nothing', async () => {
    const a = await registerAgent(t, { agent_id: 'stale-agent', capabilities: ['cap_stale'] });
    const { socket, delivered } = await agentSocket(t, a, 'ack');
    const id = await task(t, { task_type: 'st', required_capabilities: ['cap_stale'] });
    await waitFor(() => delivered.length === 1);
    const rest = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: a.access_token, body: { attempt: 7, result: { x: 1 } } });
    expect(rest.status).toBe(409);
    expect(rest.body.error.code).toBe('STALE_ATTEMPT');
    const sock = await emitAck(socket, 'task:result', { task_id: id, attempt: 3, success: true, data: {} });
    expect(sock).toMatchObject({ ok: false, error: { code: 'STALE_ATTEMPT' } });
    expect((await getTask(t, id)).status).not.toBe('completed');
    const other = await registerAgent(t, { agent_id: 'stale-other', capabilities: ['cap_stale'] });
    // A worker that may not see the task (neither holds nor created it) learns nothing of it: 404, as for an unknown id.
    const foreign = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: other.access_token, body: { attempt: 1, result: {} } });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('TASK_NOT_FOUND');
    socket.close();
  });

  it('re-delivers the task of an agent killed mid-task to another agent after the grace period, completed once', async () => {
    const a = await registerAgent(t, { agent_id: 'dying-agent', capabilities: ['cap_die'] });
    const dying = await agentSocket(t, a, 'ack');
    const id = await task(t, { task_type: 'die', required_capabilities: ['cap_die'] });
    await waitFor(() => dying.delivered.length === 1);
    await waitFor(async () => (await getTask(t, id)).status === 'running');
    const b = await agentSocket(t, await registerAgent(t, { agent_id: 'rescuer-agent', capabilities: ['cap_die'] }), 'complete');
    dying.socket.disconnect();
    const done = await waitFor(async () => { const r = await getTask(t, id); return r.status === 'completed' && r; }, 15_000);
    expect(done).toMatchObject({ assigned_agent: 'rescuer-agent', attempt: 2, result: { by: 'rescuer-agent' } });
    expect(done.history.filter((h: { to_status: string }) => h.to_status === 'completed')).toHaveLength(1);
    expect(done.history.map((h: { to_status: string }) => h.to_status)).toContain('timeout');
    const late = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: a.access_token, body: { attempt: 1, result: {} } });
    expect(late.status).toBe(409);
    b.socket.close();
  });

  it('gives a reconnecting agent its unacknowledged lease back', async () => {
    const a = await registerAgent(t, { agent_id: 'flaky-agent', capabilities: ['cap_flaky'] });
    const first = await agentSocket(t, a, 'none');
    const id = await task(t, { task_type: 'fl', required_capabilities: ['cap_flaky'] });
    await waitFor(() => first.delivered.length === 1);
    first.socket.disconnect();
    const second = await agentSocket(t, a, 'complete');
    await waitFor(() => second.delivered.length === 1);
    expect(second.delivered[0]).toMatchObject({ task_id: id, attempt: 1 });
    await waitFor(async () => (await getTask(t, id)).status === 'completed');
    second.socket.close();
  });

  it('retries with backoff, dead-letters when exhausted, and redrives', async () => {
    const a = await registerAgent(t, { agent_id: 'failing-agent', capabilities: ['cap_fail'] });
    let failing = true;
    const seen: number[] = [];
    const s = await connectSocket(t.wsUrl, a.access_token, {
      setup: (sock) => sock.on('task:delegate', (d: Delegated, ack: (r: unknown) => void) => {
        ack({ ok: true });
        seen.push(d.attempt);
        if (failing) sock.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: false, error: { code: 'MODEL_DOWN', message: 'try later', retryable: true } });
        else sock.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: true, data: { ok: true } });
      }),
    });
    const id = await task(t, { task_type: 'fl2', required_capabilities: ['cap_fail'], max_retries: 2 });
    const dead = await waitFor(async () => { const r = await getTask(t, id); return r.dead_letter && r; }, 15_000);
    expect(seen).toEqual([1, 2, 3]);
    expect(dead).toMatchObject({ status: 'failed', dead_letter: true, error: { code: 'MODEL_DOWN', retryable: true } });
    const hist = dead.history.map((h: { to_status: string }) => h.to_status);
    expect(hist.filter((x: string) => x === 'retrying')).toHaveLength(2);
    const dl = await t.api('GET', '/api/v1/tasks/dead-letter', { token: t.adminToken });
    expect(dl.body.tasks.map((x: { task_id: string }) => x.task_id)).toContain(id);
    failing = false;
    expect((await t.api('POST', `/api/v1/tasks/${id}/retry`, { token: t.adminToken })).status).toBe(200);
    const ok = await waitFor(async () => { const r = await getTask(t, id); return r.status === 'completed' && r; });
    expect(ok).toMatchObject({ attempt: 4, dead_letter: false, result: { ok: true } });
    s.close();
  });

  it('does not retry a non-retryable failure', async () => {
    const a = await registerAgent(t, { agent_id: 'fatal-agent', capabilities: ['cap_fatal'] });
    const s = await connectSocket(t.wsUrl, a.access_token, {
      setup: (sock) => sock.on('task:delegate', (d: Delegated) => sock.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: false, error: { code: 'BAD_INPUT', message: 'no', retryable: false } })),
    });
    const id = await task(t, { task_type: 'fatal', required_capabilities: ['cap_fatal'] });
    const r = await waitFor(async () => { const x = await getTask(t, id); return x.dead_letter && x; });
    expect(r).toMatchObject({ status: 'failed', attempt: 1 });
    s.close();
  });

  it('sends task:cancel to the agent running a cancelled task', async () => {
    const a = await registerAgent(t, { agent_id: 'cancel-agent', capabilities: ['cap_cancel'] });
    const { socket, delivered, cancels } = await agentSocket(t, a, 'ack');
    const id = await task(t, { task_type: 'cc', required_capabilities: ['cap_cancel'] });
    await waitFor(() => delivered.length === 1);
    await t.api('POST', `/api/v1/tasks/${id}/cancel`, { token: t.adminToken, body: { reason: 'not needed' } });
    await waitFor(() => cancels.length === 1);
    expect(cancels[0]).toEqual({ task_id: id, reason: 'not needed' });
    expect(await emitAck(socket, 'task:result', { task_id: id, success: true, data: {} })).toMatchObject({ ok: false, error: { code: 'INVALID_STATUS_TRANSITION' } });
    socket.close();
  });

  it('serves REST-only agents through the long-poll claim', async () => {
    const a = await registerAgent(t, { agent_id: 'rest-agent', capabilities: ['cap_rest'] });
    const claim = t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 2, wait_ms: 5000 } });
    await new Promise((r) => setTimeout(r, 200));
    const id = await task(t, { task_type: 'rest_work', required_capabilities: ['cap_rest'], parameters: { n: 1 } });
    const got = await claim;
    expect(got.status).toBe(200);
    expect(got.body.tasks).toHaveLength(1);
    expect(got.body.tasks[0]).toMatchObject({ task_id: id, attempt: 1, parameters: { n: 1 } });
    expect((await t.api('POST', `/api/v1/tasks/${id}/progress`, { token: a.access_token, body: { attempt: 1, progress: 0.3 } })).status).toBe(200);
    const done = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: a.access_token, body: { attempt: 1, result: { fine: true } } });
    expect(done.body).toMatchObject({ status: 'completed', duplicate: false });
    const empty = await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1, wait_ms: 0 } });
    expect(empty.body.tasks).toEqual([]);
  });

  it('times out the leases of an agent no process serves any more (crashed server), after the grace period', async () => {
    const a = await registerAgent(t, { agent_id: 'orphan-agent', capabilities: ['cap_orphan'] });
    const id = await task(t, { task_type: 'orph', required_capabilities: ['cap_orphan'] });
    const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1 } });
    expect(claimed.body.tasks[0].task_id).toBe(id);
    // Presence as a crashed process would leave it: gone.
    await t.server.services.coord.removePresence('agent', 'orphan-agent');
    const r = await waitFor(async () => { const x = await getTask(t, id); return x.attempt === 1 && x.status !== 'assigned' && x; }, 10_000);
    expect(['retrying', 'pending']).toContain(r.status);
    expect(r.history.map((h: { to_status: string }) => h.to_status)).toContain('timeout');
    expect(r.error.code).toBe('AGENT_DISCONNECTED');
  });

  it('delegates on demand: 409 when already assigned, 202 when nobody can take it', async () => {
    const id = await task(t, { task_type: 'nobody', required_capabilities: ['cap_nobody'] });
    const queued = await t.api('POST', `/api/v1/tasks/${id}/delegate`, { token: t.adminToken });
    expect(queued.status).toBe(202);
    expect(queued.body.queue_position).toBeGreaterThan(0);
    const a = await registerAgent(t, { agent_id: 'deleg-agent', capabilities: ['cap_nobody'] });
    const { socket, delivered } = await agentSocket(t, a, 'ack');
    await waitFor(() => delivered.length === 1);
    const again = await t.api('POST', `/api/v1/tasks/${id}/delegate`, { token: t.adminToken });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('TASK_ALREADY_ASSIGNED');
    socket.close();
  });

  it('drained agents get no new work', async () => {
    const a = await registerAgent(t, { agent_id: 'drain-agent', capabilities: ['cap_drain'] });
    const { socket, delivered } = await agentSocket(t, a, 'ack');
    expect((await t.api('POST', '/api/v1/agents/drain-agent/drain', { token: t.adminToken })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    const id = await task(t, { task_type: 'dr', required_capabilities: ['cap_drain'] });
    await new Promise((r) => setTimeout(r, 400));
    expect(delivered).toHaveLength(0);
    expect((await getTask(t, id)).status).toBe('pending');
    socket.close();
  });

  it('follows a connected agent\'s capacity and capabilities when they are changed over REST', async () => {
    const a = await registerAgent(t, { agent_id: 'upd-agent', capabilities: ['cap_upd', 'cap_upd2'], max_concurrent_tasks: 1 });
    const s = await agentSocket(t, a, 'ack');
    for (let i = 0; i < 3; i++) await task(t, { task_type: 'upd', required_capabilities: ['cap_upd'] });
    await waitFor(() => s.delivered.length === 1);
    const put = async (body: Record<string, unknown>) => expect((await t.api('PUT', '/api/v1/agents/upd-agent', { token: t.adminToken, body })).status).toBe(200);
    await put({ max_concurrent_tasks: 3 }); // the two waiting tasks go out at once
    await waitFor(() => s.delivered.length === 3);
    await put({ capabilities: ['cap_upd'], max_concurrent_tasks: 10 });
    const needsRemoved = await task(t, { task_type: 'upd2', required_capabilities: ['cap_upd2'] });
    const stillServed = await task(t, { task_type: 'upd', required_capabilities: ['cap_upd'] });
    await waitFor(() => s.delivered.length === 4);
    expect(s.delivered.at(-1)!.task_id).toBe(stillServed);
    await new Promise((r) => setTimeout(r, 300));
    expect(s.delivered.map((d) => d.task_id)).not.toContain(needsRemoved);
    expect((await getTask(t, needsRemoved)).status).toBe('pending');
    s.socket.close();
  });

  it('authorizes subscriptions like REST and validates every event', async () => {
    const owner = await registerAgent(t, { agent_id: 'sub-owner', capabilities: ['cap_sub'] });
    const ownerS = await agentSocket(t, owner, 'ack');
    const id = await task(t, { task_type: 'sub', required_capabilities: ['cap_sub'] });
    await waitFor(() => ownerS.delivered.length === 1);
    const intruder = await connectSocket(t.wsUrl, (await registerAgent(t, { agent_id: 'sub-intruder' })).access_token);
    expect(await emitAck(intruder, 'subscribe', { task_id: id })).toMatchObject({ ok: false, error: { code: 'TASK_NOT_FOUND' } });
    expect(await emitAck(intruder, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: false, error: { code: 'INSUFFICIENT_PERMISSIONS' } });
    expect(await emitAck(intruder, 'subscribe', { topic: 'agents' })).toMatchObject({ ok: true });
    // Another agent's room carries its tasks' events: a worker subscribes to its own only.
    expect(await emitAck(intruder, 'subscribe', { agent_id: 'sub-owner' })).toMatchObject({ ok: false, error: { code: 'INSUFFICIENT_PERMISSIONS' } });
    expect(await emitAck(intruder, 'subscribe', { agent_id: 'sub-intruder' })).toMatchObject({ ok: true });
    expect(await emitAck(ownerS.socket, 'subscribe', { task_id: id })).toMatchObject({ ok: true });
    // A user's socket sending an agent's event is answered, not ignored.
    const user = await connectSocket(t.wsUrl, t.adminToken);
    expect(await emitAck(user, 'task:result', { task_id: id, success: true, data: {} })).toMatchObject({ ok: false, error: { code: 'INSUFFICIENT_PERMISSIONS' } });
    expect(await emitAck(user, 'agent:heartbeat', {})).toMatchObject({ ok: false, error: { code: 'INSUFFICIENT_PERMISSIONS' } });
    expect(await emitAck(user, 'subscribe', { agent_id: 'sub-owner' })).toMatchObject({ ok: true });
    user.close();
    expect(await emitAck(intruder, 'subscribe', { bogus: 1 })).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR' } });
    expect(await emitAck(intruder, 'task:progress', { task_id: id, progress: 7 })).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR' } });
    const errors: Array<{ code: string }> = [];
    intruder.on('error', (e: { code: string }) => errors.push(e));
    intruder.emit('made:up', { x: 1 });
    await waitFor(() => errors.length === 1);
    expect(errors[0]!.code).toBe('UNSUPPORTED_EVENT');
    expect(intruder.connected).toBe(true);
    const bad = await connectSocket(t.wsUrl, 'Bearer nonsense').catch((e: Error) => e);
    expect((bad as Error).message).toBe('INVALID_TOKEN');
    const none = await connectSocket(t.wsUrl, '').catch((e: Error) => e);
    expect((none as Error).message).toBe('MISSING_AUTHENTICATION');
    intruder.close();
    ownerS.socket.close();
  });

  it("runs the seed's browser snippet unchanged (default transports, {task_id, result}) on both ports", async () => {
    const a = await registerAgent(t, { agent_id: 'seed-agent', capabilities: ['cap_seed'] });
    for (const base of [t.wsUrl, t.url]) {
      const socket: Socket = io(`${base}/mcp/ws`, { auth: { token: a.access_token }, forceNew: true, reconnection: false });
      socket.on('task:delegate', (task: { task_id: string }) => {
        socket.emit('task:result', { task_id: task.task_id, result: { analysis: 'done' } });
      });
      await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
      const id = await task(t, { task_type: 'seed', required_capabilities: ['cap_seed'] });
      const done = await waitFor(async () => { const r = await getTask(t, id); return r.status === 'completed' && r; });
      expect(done.result).toEqual({ analysis: 'done' });
      socket.close();
    }
  });

  it('limits sockets per principal to 10', async () => {
    const a = await registerAgent(t, { agent_id: 'many-sockets' });
    const sockets = [];
    for (let i = 0; i < 10; i++) sockets.push(await connectSocket(t.wsUrl, a.access_token));
    await expect(connectSocket(t.wsUrl, a.access_token)).rejects.toThrow('RATE_LIMIT_EXCEEDED');
    for (const s of sockets) s.close();
  });
});
