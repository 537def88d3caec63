/**
 * No existence oracle on the agent's side of a task (SPEC §3, §6): an agent reporting on a task
 * it may not see (a worker's task leased to another agent, not created by it) gets exactly what
 * an unknown task id gets — over REST and over Socket.IO, whatever attempt it names — and the
 * task is left as it was. The lease holder's own wrong attempt is still STALE_ATTEMPT, an agent
 * that may see every task still gets NOT_ASSIGNED_AGENT, and a late report of an attempt that
 * was the agent's own lease is still STALE_ATTEMPT.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiResponse, connectSocket, DELEGATION_CONFIG, emitAck, registerAgent, type RegisteredAgent, startTestServer, type TestServer, waitFor } from '../helpers/server.ts';

interface Delegated { task_id: string; attempt: number }

/** A connected agent that acknowledges every delivery and records it. */
async function ackingAgent(t: TestServer, agent: RegisteredAgent) {
  const delivered: Delegated[] = [];
  const socket = await connectSocket(t.wsUrl, agent.access_token, {
    setup: (s) => s.on('task:delegate', (d: Delegated, ack?: (r: unknown) => void) => { delivered.push(d); ack?.({ ok: true }); }),
  });
  return { socket, delivered };
}

/** The parts of an error response that must not differ between a hidden and an unknown task. */
const shape = (r: ApiResponse) => {
  const { request_id: _, ...error } = (r.body as { error: Record<string, unknown> }).error;
  return { status: r.status, error };
};

describe('agent reports on a task it may not see', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(DELEGATION_CONFIG);
  });
  afterAll(async () => t?.stop());

  const createTask = async (cap: string) => {
    const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'vis_work', required_capabilities: [cap], parameters: { text: 'x' } } });
    expect(r.status).toBe(201);
    return r.body.task_id as string;
  };
  const getTask = async (id: string) => (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body;

  it('answers another agent exactly as for an unknown id, before any attempt check', async () => {
    const holder = await registerAgent(t, { agent_id: 'vis-holder', capabilities: ['cap_vis'] });
    const a = await ackingAgent(t, holder);
    const b = await registerAgent(t, { agent_id: 'vis-stranger', capabilities: ['cap_other'] });
    const bSocket = await connectSocket(t.wsUrl, b.access_token);
    const id = await createTask('cap_vis');
    await waitFor(() => a.delivered.some((d) => d.task_id === id));
    await waitFor(async () => (await getTask(id)).status === 'running');
    const unknown = randomUUID();

    // Each attempt a stranger might name: the current one, a wrong one (the old code answered
    // STALE_ATTEMPT with current_attempt), and none ("the lease I hold"; the socket events and
    // REST accept only).
    for (const attempt of [1, 7, undefined]) {
      const rest: Array<[string, Record<string, unknown>]> = [
        ['progress', { attempt, progress: 0.5 }],
        ['complete', { attempt, result: { forged: true } }],
        ['fail', { attempt, error: { code: 'X', message: 'x', retryable: false } }],
        ['accept', { attempt }],
      ];
      for (const [op, body] of rest) {
        if (attempt === undefined && op !== 'accept') continue; // REST requires the attempt elsewhere (400 either way)
        const hidden = await t.api('POST', `/api/v1/tasks/${id}/${op}`, { token: b.access_token, body });
        const none = await t.api('POST', `/api/v1/tasks/${unknown}/${op}`, { token: b.access_token, body });
        expect(shape(hidden), `${op} attempt ${attempt}`).toEqual(shape(none));
        expect(shape(hidden), `${op} attempt ${attempt}`).toEqual({ status: 404, error: { code: 'TASK_NOT_FOUND', message: 'Task not found.' } });
      }
      const events: Array<[string, Record<string, unknown>]> = [
        ['task:progress', { attempt, progress: 0.5 }],
        ['task:result', { attempt, success: true, data: { forged: true } }],
        ['task:result', { attempt, success: false, error: { code: 'X', message: 'x', retryable: false } }],
        ['task:accepted', { attempt }],
        ['task:rejected', { attempt, reason: 'no' }],
      ];
      for (const [event, body] of events) {
        const hidden = await emitAck(bSocket, event, { task_id: id, ...body });
        const none = await emitAck(bSocket, event, { task_id: unknown, ...body });
        expect(hidden, `${event} attempt ${attempt}`).toEqual(none);
        expect(hidden, `${event} attempt ${attempt}`).toMatchObject({ ok: false, error: { code: 'TASK_NOT_FOUND' } });
      }
    }

    // Nothing changed; the holder's own wrong attempt is still refused as stale, and it can finish.
    expect(await getTask(id)).toMatchObject({ status: 'running', assigned_agent: 'vis-holder', attempt: 1, progress: 0, result: null });
    const stale = await t.api('POST', `/api/v1/tasks/${id}/progress`, { token: holder.access_token, body: { attempt: 7, progress: 0.5 } });
    expect(stale.status).toBe(409);
    expect(stale.body.error).toMatchObject({ code: 'STALE_ATTEMPT', details: { attempt: 7, current_attempt: 1 } });
    expect(await emitAck(a.socket, 'task:result', { task_id: id, attempt: 3, success: true, data: {} })).toMatchObject({ ok: false, error: { code: 'STALE_ATTEMPT', details: { attempt: 3, current_attempt: 1 } } });
    expect(await emitAck(a.socket, 'task:progress', { task_id: id, attempt: 2, progress: 0.5 })).toMatchObject({ ok: false, error: { code: 'STALE_ATTEMPT' } });
    expect(await emitAck(a.socket, 'task:result', { task_id: id, attempt: 1, success: true, data: { ok: 1 } })).toMatchObject({ ok: true, status: 'completed', attempt: 1 });
    expect(await getTask(id)).toMatchObject({ status: 'completed', result: { ok: 1 } });
    bSocket.close();
    a.socket.close();
  });

  it('still tells an agent that may see every task that the lease is not its own', async () => {
    const holder = await registerAgent(t, { agent_id: 'vis-holder-2', capabilities: ['cap_vis2'] });
    const a = await ackingAgent(t, holder);
    const sup = await registerAgent(t, { agent_id: 'vis-supervisor', capabilities: ['cap_other'], role: 'supervisor' });
    const id = await createTask('cap_vis2');
    await waitFor(() => a.delivered.some((d) => d.task_id === id));
    const r = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: sup.access_token, body: { attempt: 1, result: {} } });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('NOT_ASSIGNED_AGENT');
    a.socket.close();
  });

  it('keeps STALE_ATTEMPT for a late report of the agent\'s own earlier lease, 404 for a lease it never held', async () => {
    const first = await registerAgent(t, { agent_id: 'vis-first', capabilities: ['cap_vis3'] });
    const f = await ackingAgent(t, first);
    const id = await createTask('cap_vis3');
    await waitFor(() => f.delivered.some((d) => d.task_id === id));
    f.socket.disconnect(); // its lease times out after the grace period and the task is retried
    const second = await ackingAgent(t, await registerAgent(t, { agent_id: 'vis-second', capabilities: ['cap_vis3'] }));
    await waitFor(() => second.delivered.some((d) => d.task_id === id && d.attempt === 2), 15_000);
    const late = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: first.access_token, body: { attempt: 1, result: {} } });
    expect(late.status).toBe(409);
    expect(late.body.error).toMatchObject({ code: 'STALE_ATTEMPT', details: { attempt: 1, current_attempt: 2 } });
    const foreign = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: first.access_token, body: { attempt: 2, result: {} } });
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe('TASK_NOT_FOUND');
    expect(await getTask(id)).toMatchObject({ status: 'running', assigned_agent: 'vis-second', attempt: 2 });
    second.socket.close();
  });
});
