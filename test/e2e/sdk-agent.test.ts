/**
 * The Agent SDK end to end (SPEC §8, §12): a real server, `McpAgent` over real Socket.IO, the
 * task state read back over REST.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpAgent, McpApiError, McpClient, NonRetryableError, type DelegatedTask, type McpAgentOptions } from '../../src/sdk/index.ts';
import { registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => { open = r; });
  return { p, open };
}

describe('Agent SDK (McpAgent) against a real server', () => {
  let t: TestServer;
  let admin: McpClient;
  const agents: McpAgent[] = [];

  async function agent(id: string, capability: string, handlers: McpAgentOptions['handlers'], opts: Partial<McpAgentOptions> = {}) {
    const reg = await registerAgent(t, { agent_id: id, capabilities: [capability] });
    const a = new McpAgent({ url: t.url, agentId: id, apiKey: reg.api_key, handlers, heartbeatIntervalMs: 500, reconnect: { delayMs: 50, maxDelayMs: 200 }, ...opts });
    agents.push(a);
    await a.start();
    return a;
  }
  const create = async (task_type: string, capability: string, extra: Record<string, unknown> = {}) =>
    (await admin.tasks.create({ task_type, required_capabilities: [capability], parameters: { text: 'hello' }, ...extra })).task_id;

  beforeAll(async () => {
    t = await startTestServer({
      'agents.builtin': false, 'tasks.retry_base_ms': 20, 'tasks.retry_cap_ms': 100, 'tasks.lease_grace_seconds': 5,
      'limits.default_per_min': 100000, 'limits.task_create_per_min': 100000, 'limits.register_per_min': 100000,
    });
    admin = new McpClient({ url: t.url, accessToken: t.adminToken });
  });
  afterAll(async () => {
    for (const a of agents) await a.stop({ drain: false });
    await t?.stop();
  });

  it('takes a task, reports progress with its attempt, completes it', async () => {
    const g = gate();
    const seen: DelegatedTask[] = [];
    const a = await agent('sdk-basic', 'sdk_basic', {
      sdk_work: async (task, ctx) => {
        seen.push(task);
        await ctx.progress(0.5, 'half way');
        await g.p;
        return { echoed: (task.parameters as { text: string }).text, attempt: ctx.attempt };
      },
    });
    expect((await admin.agents.get('sdk-basic')).max_concurrent_tasks).toBe(a.concurrency);
    const id = await create('sdk_work', 'sdk_basic');
    await waitFor(async () => (await admin.tasks.get(id)).progress === 0.5);
    const mid = await admin.tasks.get(id);
    expect(mid).toMatchObject({ status: 'running', assigned_agent: 'sdk-basic', attempt: 1, progress_message: 'half way' });
    g.open();
    const done = await waitFor(async () => { const x = await admin.tasks.get(id); return x.status === 'completed' && x; });
    expect(done.result).toEqual({ echoed: 'hello', attempt: 1 });
    expect(seen.map((s) => s.task_id)).toEqual([id]);
    expect(seen[0]).toMatchObject({ task_type: 'sdk_work', attempt: 1, metadata: { timeout_seconds: 300 } });
  });

  it('a thrown error is reported retryable and the task is retried; NonRetryableError dead-letters', async () => {
    const attempts: number[] = [];
    await agent('sdk-retry', 'sdk_retry', {
      flaky: async (_t, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt === 1) throw Object.assign(new Error('transient upstream hiccup'), { code: 'UPSTREAM_DOWN' });
        return { ok: true };
      },
      hopeless: async () => { throw new NonRetryableError('input cannot be parsed', 'BAD_INPUT'); },
    });
    const flaky = await create('flaky', 'sdk_retry', { max_retries: 3 });
    const done = await waitFor(async () => { const x = await admin.tasks.get(flaky); return x.status === 'completed' && x; });
    expect(done.attempt).toBe(2);
    expect(attempts).toEqual([1, 2]);
    expect(done.history.map((h) => h.to_status)).toContain('retrying');

    const hopeless = await create('hopeless', 'sdk_retry', { max_retries: 3 });
    const dead = await waitFor(async () => { const x = await admin.tasks.get(hopeless); return x.dead_letter && x; });
    expect(dead).toMatchObject({ status: 'failed', attempt: 1, dead_letter: true, error: { code: 'BAD_INPUT', message: 'input cannot be parsed', retryable: false } });
    expect((await admin.tasks.deadLetter()).tasks.map((x) => x.task_id)).toContain(hopeless);
  });

  it('cancelling a running task aborts the handler signal and sends no result', async () => {
    const started = gate();
    let abortedWith: unknown;
    const a = await agent('sdk-cancel', 'sdk_cancel', {
      long: (_t, ctx) => new Promise((_resolve, reject) => {
        started.open();
        ctx.signal.addEventListener('abort', () => { abortedWith = ctx.signal.reason; reject(ctx.signal.reason as Error); });
      }),
    });
    const cancelled: string[] = [];
    a.on('cancelled', (c) => cancelled.push(c.task_id));
    const id = await create('long', 'sdk_cancel');
    await started.p;
    await waitFor(async () => (await admin.tasks.get(id)).status === 'running');
    await admin.tasks.cancel(id, 'operator said stop');
    await waitFor(() => abortedWith !== undefined);
    expect(String((abortedWith as Error).message)).toContain('operator said stop');
    expect(cancelled).toEqual([id]);
    await waitFor(() => a.inFlight === 0);
    const x = await admin.tasks.get(id);
    expect(x.status).toBe('cancelled');
    expect(x.history.map((h) => h.to_status).at(-1)).toBe('cancelled');
  });

  it('never runs more than `concurrency` handlers at once (N+1 tasks, concurrency N)', async () => {
    const N = 2;
    let now = 0;
    let max = 0;
    const a = await agent('sdk-conc', 'sdk_conc', {
      slow: async () => {
        now++;
        max = Math.max(max, now);
        await new Promise((r) => setTimeout(r, 150));
        now--;
        return { done: true };
      },
    }, { concurrency: N });
    expect((await admin.agents.get('sdk-conc')).max_concurrent_tasks).toBe(N);
    const ids = await Promise.all(Array.from({ length: N + 1 }, () => create('slow', 'sdk_conc')));
    await waitFor(async () => (await admin.tasks.list({ task_type: 'slow', status: 'completed' })).tasks.length === N + 1, 15_000);
    expect(max).toBe(N);
    for (const id of ids) expect((await admin.tasks.get(id)).assigned_agent).toBe('sdk-conc');
    expect(a.inFlight).toBe(0);
  });

  it('stop({drain: true}) finishes in-flight work and receives nothing new', async () => {
    const g = gate();
    const received: string[] = [];
    const a = await agent('sdk-drain', 'sdk_drain', {
      work: async (task) => { received.push(task.task_id); await g.p; return { ok: 1 }; },
    });
    const first = await create('work', 'sdk_drain');
    await waitFor(() => received.length === 1);
    const stopping = a.stop({ drain: true, timeoutMs: 10_000 });
    await waitFor(async () => (await admin.agents.get('sdk-drain')).draining);
    const second = await create('work', 'sdk_drain');
    await new Promise((r) => setTimeout(r, 300));
    g.open();
    await stopping;
    expect(a.connected).toBe(false);
    expect(received).toEqual([first]);
    expect((await admin.tasks.get(first)).status).toBe('completed');
    const s = await admin.tasks.get(second);
    expect(s.status).toBe('pending');
    expect(s.assigned_agent).toBeNull();
    expect(await admin.agents.get('sdk-drain')).toMatchObject({ draining: true, status: 'inactive' });
  });

  it('reconnects after the server drops the socket, keeps its lease, ignores a re-sent delivery', async () => {
    const g = gate();
    let runs = 0;
    const a = await agent('sdk-reconnect', 'sdk_reconnect', {
      hold: async (_t, ctx) => { runs++; await g.p; return { attempt: ctx.attempt }; },
    });
    const events: string[] = [];
    a.on('connected', (e) => events.push(e.reconnect ? 'reconnected' : 'connected'));
    a.on('disconnected', () => events.push('disconnected'));
    const id = await create('hold', 'sdk_reconnect');
    await waitFor(async () => (await admin.tasks.get(id)).status === 'running');
    const before = await admin.tasks.get(id);

    t.server.realtime.nsp.in('agent-conn:sdk-reconnect').disconnectSockets(true);
    await waitFor(() => events.includes('reconnected'));
    // and after a server-side (not transport) disconnect, which socket.io itself does not retry
    t.server.realtime.nsp.in('agent-conn:sdk-reconnect').disconnectSockets(false);
    await waitFor(() => events.filter((e) => e === 'reconnected').length === 2);
    expect(a.connected).toBe(true);

    // The server re-sends leases it believes unacknowledged; the agent must not run them twice.
    const detail = await admin.tasks.get(id);
    const dup: DelegatedTask = { task_id: id, task_type: 'hold', parameters: {}, priority: 5, deadline: null, pipeline_id: null, stage: null, attempt: detail.attempt, required_capabilities: ['hold'], data_classification: 'phi', metadata: { assigned_at: new Date().toISOString(), timeout_seconds: 300, lease_expires_at: new Date(Date.now() + 300_000).toISOString() } };
    const acks = await t.server.realtime.nsp.in('agent-conn:sdk-reconnect').timeout(2000).emitWithAck('task:delegate', dup) as Array<{ ok: boolean }>;
    expect(acks).toEqual([{ ok: true }]);

    g.open();
    const done = await waitFor(async () => { const x = await admin.tasks.get(id); return x.status === 'completed' && x; });
    expect(done.attempt).toBe(before.attempt);
    expect(done.result).toEqual({ attempt: before.attempt });
    expect(runs).toBe(1);
  });

  it('answers auth:expired with auth:refresh using a renewed token', async () => {
    const a = await agent('sdk-auth', 'sdk_auth', { noop: async () => ({}) });
    const before = a.client.token;
    const refreshed = new Promise<{ via: string }>((r) => a.once('token_refreshed', r));
    const errors: Error[] = [];
    a.on('error', (e) => errors.push(e));
    t.server.realtime.nsp.in('agent-conn:sdk-auth').emit('auth:expired', { message: 'test', timestamp: new Date().toISOString() });
    expect(await refreshed).toEqual({ via: 'socket' });
    expect(a.client.token).toBeTruthy();
    expect(a.client.token).not.toBe(before);
    expect(errors).toEqual([]);
    // the renewed token works over REST and the socket stays up
    expect((await a.client.agents.get('sdk-auth')).agent_id).toBe('sdk-auth');
    expect(a.connected).toBe(true);
  });

  it('a wrong API key fails start() with McpApiError INVALID_CREDENTIALS', async () => {
    await registerAgent(t, { agent_id: 'sdk-badkey', capabilities: ['sdk_bad'] });
    const a = new McpAgent({ url: t.url, agentId: 'sdk-badkey', apiKey: 'not-the-key', handlers: {} });
    const err = await a.start().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(McpApiError);
    expect(err).toMatchObject({ status: 401, code: 'INVALID_CREDENTIALS' });
    expect((err as McpApiError).requestId).toBeTruthy();
  });
});
