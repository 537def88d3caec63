/**
 * Task lifecycle deviations from SPEC §6/§8 found by an audit, end to end on both engines (real
 * server, real HTTP, real socket.io-client agents): refusals, retries, dependencies that can
 * never complete, final status of exhausted timeouts, late results, scores, REST claims.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'socket.io-client';
import { connectSocket, DELEGATION_CONFIG, emitAck, registerAgent, type RegisteredAgent, startTestServer, type TestServer, waitFor } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';
import { userToken } from '../helpers/server.ts';

interface Delegated { task_id: string; attempt: number }
interface HistoryItem { from_status: string | null; to_status: string; attempt: number; agent_id: string | null; reason: string | null }

/**
 * An agent socket: `answer` decides what it does with each delivery — `refuse` (ack `{ok: false}`,
 * as the SDK does without a handler or at its limit), `ack` (accept, never answer), `complete`,
 * `fail` (retryable failure).
 */
async function agentSocket(t: TestServer, agent: RegisteredAgent, answer: () => 'refuse' | 'ack' | 'complete' | 'fail'): Promise<{ socket: Socket; delivered: Delegated[] }> {
  const delivered: Delegated[] = [];
  const socket = await connectSocket(t.wsUrl, agent.access_token, {
    setup: (s) => {
      s.on('task:delegate', (d: Delegated, ack?: (r: unknown) => void) => {
        delivered.push(d);
        const a = answer();
        if (a === 'refuse') return ack?.({ ok: false, reason: 'no handler' });
        ack?.({ ok: true });
        if (a === 'complete') s.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: true, data: { by: agent.agent_id } });
        if (a === 'fail') s.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: false, error: { code: 'MODEL_DOWN', message: 'try later', retryable: true } });
      });
    },
  });
  return { socket, delivered };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(engines())('task lifecycle fixes on $name', (engine) => {
  let t: TestServer;
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await engine.open();
    t = await startTestServer(DELEGATION_CONFIG, { db: tdb.db });
  });
  afterAll(async () => {
    await t?.stop();
    await tdb?.dispose();
  });

  const task = async (body: Record<string, unknown>) => {
    const r = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body });
    expect(r.status).toBe(201);
    return r.body.task_id as string;
  };
  const getTask = async (id: string) => (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body;

  it('a refused task is not offered to the refusing agent again at once: it waits, then goes elsewhere (SPEC §8)', async () => {
    const refuser = await registerAgent(t, { agent_id: 'refuser-1', capabilities: ['cap_refuse1'] });
    const a = await agentSocket(t, refuser, () => 'refuse');
    const id = await task({ task_type: 'refused_work', required_capabilities: ['cap_refuse1'] });
    await waitFor(() => a.delivered.length >= 1);
    // Only the refusing agent is capable: the task waits instead of looping back to it (the old
    // code offered it hundreds of times a second). Within 1.5 s: the first offer, and at most one
    // more once the first exclusion (1 s) ended.
    await sleep(1500);
    expect(a.delivered.length).toBeGreaterThanOrEqual(1);
    expect(a.delivered.length).toBeLessThanOrEqual(2);
    const waiting = await getTask(id);
    expect(waiting.status).toBe('pending');
    expect(waiting.attempt).toBe(a.delivered.length);
    // Another capable agent arrives: the task goes to it, not back to the refuser.
    const taker = await registerAgent(t, { agent_id: 'taker-1', capabilities: ['cap_refuse1'] });
    const b = await agentSocket(t, taker, () => 'complete');
    const done = await waitFor(async () => { const r = await getTask(id); return r.status === 'completed' && r; });
    expect(done.assigned_agent).toBe('taker-1');
    const refusals = (done.history as HistoryItem[]).filter((h) => h.reason?.startsWith('rejected'));
    expect(refusals.length).toBe(a.delivered.length);
    expect(refusals.every((h) => h.agent_id === 'refuser-1')).toBe(true);
    expect(b.delivered).toHaveLength(1);
    a.socket.close();
    b.socket.close();
  });

  it('turning a task down consumes none of its retries: max_retries 1, refused once, then a retryable failure is retried (SPEC §6)', async () => {
    const refuser = await registerAgent(t, { agent_id: 'refuser-2', capabilities: ['cap_refuse2'] });
    const a = await agentSocket(t, refuser, () => 'refuse');
    const id = await task({ task_type: 'refused_then_failed', required_capabilities: ['cap_refuse2'], max_retries: 1 });
    await waitFor(() => a.delivered.length >= 1);
    a.socket.close();
    const failer = await registerAgent(t, { agent_id: 'failer-2', capabilities: ['cap_refuse2'] });
    const b = await agentSocket(t, failer, () => 'fail');
    const dead = await waitFor(async () => { const r = await getTask(id); return r.dead_letter && r; }, 15_000);
    // Two failures (max_retries 1: one retry), both by the failing agent; the refusal counted for none.
    expect(b.delivered.map((d) => d.attempt)).toEqual([2, 3]);
    expect(dead).toMatchObject({ status: 'failed', dead_letter: true, attempt: 3, error: { code: 'MODEL_DOWN', retryable: true } });
    const h = dead.history as HistoryItem[];
    expect(h.filter((x) => x.to_status === 'retrying')).toHaveLength(1);
    expect(h.filter((x) => x.to_status === 'failed').map((x) => x.attempt)).toEqual([2, 3]);
    // A redrive grants one more delivery, whose failure is final again.
    expect((await t.api('POST', `/api/v1/tasks/${id}/retry`, { token: t.adminToken })).status).toBe(200);
    const again = await waitFor(async () => { const r = await getTask(id); return r.dead_letter && r; }, 15_000);
    expect(b.delivered.map((d) => d.attempt)).toEqual([2, 3, 4]);
    expect(again).toMatchObject({ status: 'failed', attempt: 4 });
    b.socket.close();
  });

  it('a task waiting for a cancelled or dead-lettered dependency fails for good (DEPENDENCY_FAILED), transitively, with task:failed; delegate says it waits for dependencies', async () => {
    const worker = await registerAgent(t, { agent_id: 'dep-worker', capabilities: ['cap_dep'] });
    const w = await agentSocket(t, worker, () => 'complete');
    const sup = await connectSocket(t.wsUrl, await userToken(t, 'supervisor'));
    const failedEvents: Array<{ task_id: string; error: { code: string }; dead_letter: boolean; will_retry: boolean }> = [];
    sup.on('task:failed', (e: (typeof failedEvents)[number]) => failedEvents.push(e));
    expect(await emitAck(sup, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: true });

    // Cancelled dependency: nobody can run `root` (no agent has its capability).
    const root = await task({ task_type: 'dep_root', required_capabilities: ['cap_nobody_dep'] });
    const child = await task({ task_type: 'dep_child', required_capabilities: ['cap_dep'], dependencies: [root] });
    const grandchild = await task({ task_type: 'dep_grandchild', required_capabilities: ['cap_dep'], dependencies: [child] });
    const deleg = await t.api('POST', `/api/v1/tasks/${child}/delegate`, { token: t.adminToken, body: {} });
    expect(deleg.status).toBe(202);
    expect(deleg.body.message).toMatch(/waits for its dependencies/);
    expect(deleg.body.message).not.toMatch(/No capable agent/);
    expect((await t.api('POST', `/api/v1/tasks/${root}/cancel`, { token: t.adminToken, body: {} })).status).toBe(200);
    for (const id of [child, grandchild]) {
      const r = await getTask(id);
      expect(r).toMatchObject({ status: 'failed', dead_letter: true, error: { code: 'DEPENDENCY_FAILED', retryable: false } });
      expect((r.history as HistoryItem[]).at(-1)).toMatchObject({ from_status: 'pending', to_status: 'failed', reason: 'DEPENDENCY_FAILED' });
    }
    expect((await getTask(child)).error.details).toEqual({ dependency: root });
    expect((await getTask(grandchild)).error.details).toEqual({ dependency: child });
    await waitFor(() => failedEvents.filter((e) => e.task_id === child || e.task_id === grandchild).length === 2);
    expect(failedEvents.find((e) => e.task_id === child)).toMatchObject({ error: { code: 'DEPENDENCY_FAILED' }, dead_letter: true, will_retry: false });
    const dl = await t.api('GET', '/api/v1/tasks/dead-letter?limit=100', { token: t.adminToken });
    expect(dl.body.tasks.map((x: { task_id: string }) => x.task_id)).toEqual(expect.arrayContaining([child, grandchild]));
    // A task created waiting for a dependency that already can never complete fails too (by the sweep).
    const late = await task({ task_type: 'dep_late', required_capabilities: ['cap_dep'], dependencies: [root] });
    await waitFor(async () => (await getTask(late)).status === 'failed');
    expect((await getTask(late)).error.code).toBe('DEPENDENCY_FAILED');
    expect(w.delivered).toHaveLength(0);

    // Dead-lettered dependency: its agent fails it without a retry.
    const fatal = await registerAgent(t, { agent_id: 'dep-fatal', capabilities: ['cap_dep_fatal'] });
    let fatalAnswer: 'fail' | 'complete' = 'fail';
    const f = await connectSocket(t.wsUrl, fatal.access_token, {
      setup: (s) => s.on('task:delegate', (d: Delegated, ack: (r: unknown) => void) => {
        ack({ ok: true });
        if (fatalAnswer === 'fail') s.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: false, error: { code: 'BAD_INPUT', message: 'no', retryable: false } });
        else s.emit('task:result', { task_id: d.task_id, attempt: d.attempt, success: true, data: {} });
      }),
    });
    const pendingDep = await task({ task_type: 'dep_pending', required_capabilities: ['cap_nobody_yet'] });
    const waiting = await task({ task_type: 'dep_waiting', required_capabilities: ['cap_dep'], dependencies: [pendingDep] });
    const dep2 = await task({ task_type: 'dep_fatal', required_capabilities: ['cap_dep_fatal'], max_retries: 0 });
    const waiting2 = await task({ task_type: 'dep_waiting', required_capabilities: ['cap_dep'], dependencies: [dep2] });
    await waitFor(async () => (await getTask(dep2)).dead_letter === true);
    const failedChild = await waitFor(async () => { const r = await getTask(waiting2); return r.status === 'failed' && r; });
    expect(failedChild).toMatchObject({ dead_letter: true, error: { code: 'DEPENDENCY_FAILED', details: { dependency: dep2 } } });
    expect((await getTask(waiting)).status).toBe('pending'); // its dependency is only waiting, not failed
    // Redriving the dependent while its dependency is still dead is refused; once the dependency
    // was redriven and completed, the dependent can be redriven and runs.
    const refused = await t.api('POST', `/api/v1/tasks/${waiting2}/retry`, { token: t.adminToken });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'CONFLICT', details: { dependencies: [dep2] } });
    fatalAnswer = 'complete';
    expect((await t.api('POST', `/api/v1/tasks/${dep2}/retry`, { token: t.adminToken })).status).toBe(200);
    await waitFor(async () => (await getTask(dep2)).status === 'completed');
    expect((await t.api('POST', `/api/v1/tasks/${waiting2}/retry`, { token: t.adminToken })).status).toBe(200);
    const ran = await waitFor(async () => { const r = await getTask(waiting2); return r.status === 'completed' && r; });
    expect(ran.assigned_agent).toBe('dep-worker');
    w.socket.close();
    f.close();
    sup.close();
  });

  it('a task whose retries run out by timing out ends failed with dead_letter, its error saying it timed out (SPEC §6)', async () => {
    const silent = await registerAgent(t, { agent_id: 'silent-4', capabilities: ['cap_silent4'] });
    const a = await agentSocket(t, silent, () => 'ack');
    const id = await task({ task_type: 'times_out', required_capabilities: ['cap_silent4'], timeout_seconds: 1, max_retries: 0 });
    const dead = await waitFor(async () => { const r = await getTask(id); return r.dead_letter && r; }, 10_000);
    expect(dead).toMatchObject({ status: 'failed', dead_letter: true, attempt: 1, retry_at: null, error: { code: 'TASK_TIMEOUT', retryable: true } });
    expect((dead.history as HistoryItem[]).slice(-2).map((h) => [h.from_status, h.to_status])).toEqual([['running', 'timeout'], ['timeout', 'failed']]);
    const dl = await t.api('GET', '/api/v1/tasks/dead-letter?limit=100', { token: t.adminToken });
    expect(dl.body.tasks.find((x: { task_id: string }) => x.task_id === id)).toMatchObject({ status: 'failed' });
    expect(a.delivered).toHaveLength(1);
    a.socket.close();
  });

  it('a late result for a lease that expired, the task back in the queue with the same attempt, is 409 STALE_ATTEMPT (SPEC §6)', async () => {
    const late = await registerAgent(t, { agent_id: 'late-5', capabilities: ['cap_late5'] });
    const id = await task({ task_type: 'late_result', required_capabilities: ['cap_late5'], timeout_seconds: 1, max_retries: 2 });
    const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: late.access_token, body: { max: 1, wait_ms: 2000 } });
    expect(claimed.body.tasks.map((x: Delegated) => [x.task_id, x.attempt])).toEqual([[id, 1]]);
    // The lease expires; after the backoff the task is pending again, still attempt 1 (no agent holds a slot to take it).
    const queued = await waitFor(async () => { const r = await getTask(id); return r.status === 'pending' && r; }, 10_000);
    expect(queued).toMatchObject({ attempt: 1, assigned_agent: null });
    const done = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: late.access_token, body: { attempt: 1, result: { late: true } } });
    expect(done.status).toBe(409);
    expect(done.body.error).toMatchObject({ code: 'STALE_ATTEMPT', details: { attempt: 1, current_attempt: 1 } });
    const failed = await t.api('POST', `/api/v1/tasks/${id}/fail`, { token: late.access_token, body: { attempt: 1, error: { code: 'X', message: 'late', retryable: true } } });
    expect(failed.status).toBe(409);
    expect(failed.body.error.code).toBe('STALE_ATTEMPT');
    const progress = await t.api('POST', `/api/v1/tasks/${id}/progress`, { token: late.access_token, body: { attempt: 1, progress: 0.5 } });
    expect(progress.status).toBe(409);
    expect(progress.body.error.code).toBe('STALE_ATTEMPT');
    expect(await getTask(id)).toMatchObject({ status: 'pending', attempt: 1, result: null });
  });

  it("a lease that times out counts as a failure of the agent that held it (its score, best_performance)", async () => {
    const silent = await registerAgent(t, { agent_id: 'silent-6', capabilities: ['cap_silent6'] });
    const a = await agentSocket(t, silent, () => 'ack');
    const perf = async () => (await t.api('GET', `/api/v1/agents/${silent.agent_id}`, { token: t.adminToken })).body.performance_metrics as { tasks_failed: number; tasks_completed: number; success_rate: number; score: number };
    expect(await perf()).toMatchObject({ tasks_failed: 0, tasks_completed: 0 });
    const id = await task({ task_type: 'never_answered', required_capabilities: ['cap_silent6'], timeout_seconds: 1, max_retries: 1 });
    // Two leases, both expire (the second is final).
    await waitFor(async () => (await getTask(id)).dead_letter === true, 15_000);
    expect(a.delivered.map((d) => d.attempt)).toEqual([1, 2]);
    const p = await waitFor(async () => { const x = await perf(); return x.tasks_failed === 2 && x; });
    expect(p).toMatchObject({ tasks_failed: 2, tasks_completed: 0, success_rate: 0 });
    expect(p.score).toBeLessThan(0.7);
    a.socket.close();
  });

  it("an offline REST-only agent's claim is a sign of life first: its first claim gets the waiting task", async () => {
    const rest = await registerAgent(t, { agent_id: 'rest-7', capabilities: ['cap_rest7'] });
    // Silent long enough for the offline sweep: offline.
    await t.server.services.agents.setStatus(rest.agent_id, 'offline');
    expect((await t.api('GET', `/api/v1/agents/${rest.agent_id}`, { token: t.adminToken })).body.status).toBe('offline');
    const id = await task({ task_type: 'rest_claim', required_capabilities: ['cap_rest7'] });
    const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: rest.access_token, body: { max: 1, wait_ms: 0 } });
    expect(claimed.status).toBe(200);
    expect(claimed.body.tasks.map((x: Delegated) => [x.task_id, x.attempt])).toEqual([[id, 1]]);
    expect((await t.api('GET', `/api/v1/agents/${rest.agent_id}`, { token: t.adminToken })).body.status).toBe('active');
    const done = await t.api('POST', `/api/v1/tasks/${id}/complete`, { token: rest.access_token, body: { attempt: 1, result: { ok: true } } });
    expect(done.body).toMatchObject({ status: 'completed' });
  });
});

describe.each(engines())('a late report while the task waits for its retry on $name', (engine) => {
  let t: TestServer;
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await engine.open();
    // A long backoff: the timed-out task stays `retrying` while the late reports arrive.
    t = await startTestServer({ ...DELEGATION_CONFIG, 'tasks.retry_base_ms': 60_000, 'tasks.retry_cap_ms': 60_000 }, { db: tdb.db });
  });
  afterAll(async () => {
    await t?.stop();
    await tdb?.dispose();
  });

  it('is 409 STALE_ATTEMPT (its lease ended), not INVALID_STATUS_TRANSITION, and changes nothing', async () => {
    const late = await registerAgent(t, { agent_id: 'late-retrying', capabilities: ['cap_late_retrying'] });
    const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'late_retrying', required_capabilities: ['cap_late_retrying'], timeout_seconds: 1, max_retries: 2 } });
    const id = created.body.task_id as string;
    const claimed = await t.api('POST', '/api/v1/tasks/claim', { token: late.access_token, body: { max: 1, wait_ms: 2000 } });
    expect(claimed.body.tasks.map((x: Delegated) => [x.task_id, x.attempt])).toEqual([[id, 1]]);
    const get = async () => (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body as { status: string; attempt: number };
    await waitFor(async () => (await get()).status === 'retrying', 10_000);
    for (const [route, body] of [
      ['complete', { attempt: 1, result: { late: true } }],
      ['fail', { attempt: 1, error: { code: 'X', message: 'late', retryable: true } }],
      ['progress', { attempt: 1, progress: 0.5 }],
    ] as const) {
      const r = await t.api('POST', `/api/v1/tasks/${id}/${route}`, { token: late.access_token, body });
      expect(r.status, route).toBe(409);
      expect(r.body.error.code, route).toBe('STALE_ATTEMPT');
    }
    expect(await get()).toMatchObject({ status: 'retrying', attempt: 1 });
  });
});
