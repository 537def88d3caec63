/**
 * Several server processes, one system (issue 5): two real `src/main.ts` processes on one
 * PostgreSQL schema and a private Redis, agents on real socket.io-clients. Cross-process
 * delegation and subscriptions, shared rate limits, one leader; Redis restarted empty mid-run
 * (503 + Retry-After while it is down, nothing acknowledged lost); `kill -9` of a process with
 * agents and tasks in flight (agents reconnect through the balancer to the survivor, leases
 * resume, nothing lost, nothing recorded twice) — also for tasks the survivor leased at insert,
 * with capacity the dead process had granted it, to an agent that process served.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { Redis } from 'ioredis';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../helpers/stores.ts';
import { makeApi, waitFor, type Api } from '../helpers/server.ts';
import { clusterSecrets, hasRedisServer, startBalancer, startRedisServer, startServerProcess, type Balancer, type RedisServer, type ServerProcess } from '../helpers/processes.ts';

const PG_URL = process.env.MCP_TEST_PG_URL ?? '';
const ADMIN_PASSWORD = 'multi-process-admin-1';
const PREFIX = `mp${Date.now().toString(36)}:`;

interface Delegated { task_id: string; attempt: number; task_type: string }
interface Node { proc: ServerProcess; api: Api; token: string }

/** A socket.io-client agent: acks deliveries; `complete` answers at once, `hold` keeps tasks until `finish()`. */
class TestAgent {
  readonly delivered: Delegated[] = [];
  readonly held = new Map<string, Delegated>();
  readonly results = new Map<string, { ok: boolean; duplicate?: boolean; status?: string; error?: { code: string } }>();
  socket!: Socket;
  connects = 0;
  private beat: NodeJS.Timeout | undefined;

  constructor(readonly id: string, private readonly token: string, private mode: 'complete' | 'hold') {}

  connect(url: string, reconnection = false): Promise<void> {
    this.socket = io(`${url}/mcp/ws`, { auth: { token: this.token }, transports: ['websocket'], forceNew: true, autoConnect: false, reconnection, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    this.socket.on('connect', () => { this.connects++; });
    // Heartbeats keep the agent's presence (TTL = MCP_AGENT_TIMEOUT_SECONDS) alive; failures while Redis is down are expected.
    this.beat = setInterval(() => { if (this.socket.connected) this.socket.timeout(2000).emit('agent:heartbeat', {}, () => {}); }, 1000);
    this.socket.on('task:delegate', (t: Delegated, ack?: (r: unknown) => void) => {
      this.delivered.push(t);
      ack?.({ ok: true });
      if (this.mode === 'complete') void this.send(t);
      else this.held.set(t.task_id, t);
    });
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('connect_error', reject);
      this.socket.connect();
    });
  }

  async send(t: Delegated): Promise<void> {
    const r = (await this.socket.timeout(5000).emitWithAck('task:result', { task_id: t.task_id, attempt: t.attempt, success: true, data: { by: this.id, attempt: t.attempt } })) as { ok: boolean };
    this.results.set(t.task_id, r);
  }

  /** Completes every held task (with its original attempt) and switches to `complete`. */
  async finish(): Promise<void> {
    this.mode = 'complete';
    for (const t of [...this.held.values()]) {
      await this.send(t);
      this.held.delete(t.task_id);
    }
  }

  close(): void {
    clearInterval(this.beat);
    this.socket?.close();
  }
}

describe.skipIf(!PG_URL || !hasRedisServer())('several server processes on PostgreSQL + Redis', () => {
  let redisServer: RedisServer;
  let redis: Redis;
  let schema: string;
  let a: Node;
  let b: Node;
  let lb: Balancer;
  const agents: TestAgent[] = [];
  let failed = false;
  afterEach((ctx) => { if (ctx.task.result?.state === 'fail') failed = true; });

  const env = () => ({
    DATABASE_URL: pgUrlWithSchema(PG_URL, schema), REDIS_URL: redisServer.url, MCP_REDIS_PREFIX: PREFIX, MCP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MCP_BUILTIN_AGENTS: 'false', MCP_SWEEP_INTERVAL_MS: '200', MCP_LEASE_GRACE_SECONDS: '2', MCP_AGENT_TIMEOUT_SECONDS: '5',
    // Long enough that a quick delivery across processes proves the pub/sub wake-up, not the safety net.
    MCP_DISPATCH_SAFETY_NET_MS: '30000',
    MCP_RATE_LIMIT_DEFAULT: '100000', MCP_RATE_LIMIT_TASK_CREATE: '100000', MCP_RATE_LIMIT_REGISTER: '100000', MCP_RATE_LIMIT_HEALTH: '12',
    ...secrets,
  });
  let secrets: Record<string, string>;

  async function node(proc: ServerProcess): Promise<Node> {
    const api = makeApi(proc.url);
    const login = await api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    expect(login.status).toBe(200);
    return { proc, api, token: login.body.access_token };
  }

  async function registerAgent(n: Node, agent_id: string, capability: string, mode: 'complete' | 'hold', max = 10): Promise<TestAgent> {
    const r = await n.api<{ access_token: string }>('POST', '/api/v1/agents/register', { token: n.token, body: { agent_id, name: agent_id, type: 'general', capabilities: [capability], version: '1.0.0', max_concurrent_tasks: max } });
    expect(r.status).toBe(201);
    const agent = new TestAgent(agent_id, r.body.access_token, mode);
    agents.push(agent);
    return agent;
  }

  async function createTask(n: Node, capability: string): Promise<string> {
    const r = await n.api<{ task_id: string }>('POST', '/api/v1/tasks', { token: n.token, body: { task_type: 'mp', required_capabilities: [capability], parameters: { n: 1 } } });
    expect(r.status, r.text).toBe(201);
    return r.body.task_id;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- task JSON
  const getTask = async (n: Node, id: string): Promise<any> => (await n.api('GET', `/api/v1/tasks/${id}`, { token: n.token })).body;

  /** Which server process an agent's socket is on, from the `agent-socket` presence in Redis. */
  /** An admin socket on `n` subscribed to the `tasks` topic, recording task events with their seq. */
  async function subscribeToTasks(n: Node): Promise<{ socket: Socket; events: Array<{ name: string; task_id: string; seq: number }> }> {
    const socket = io(`${n.proc.url}/mcp/ws`, { auth: { token: n.token }, transports: ['websocket'], forceNew: true, reconnection: false });
    const events: Array<{ name: string; task_id: string; seq: number }> = [];
    socket.onAny((name: string, p: { task_id?: string; seq: number }) => { if (name.startsWith('task:') && p.task_id) events.push({ name, task_id: p.task_id, seq: p.seq }); });
    await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
    expect(await socket.timeout(5000).emitWithAck('subscribe', { topic: 'tasks' })).toMatchObject({ ok: true });
    return { socket, events };
  }

  async function servedBy(agentId: string): Promise<number | null> {
    const raw = await redis.hget(`${PREFIX}presence:{agent-socket}:data`, agentId);
    return raw ? (JSON.parse(raw) as { pid: number }).pid : null;
  }

  const leaderPid = async (): Promise<number | null> => {
    const owner = await redis.hget(`${PREFIX}lock:{mcp:leader}`, 'owner');
    return owner ? Number(owner.split('-')[0]) : null;
  };

  /** Every task completed exactly once, with the expected attempt. */
  async function expectCompletedOnce(n: Node, ids: string[], timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => {
      for (const id of ids) if ((await getTask(n, id)).status !== 'completed') return false;
      return true;
    }, timeoutMs, 100);
    for (const id of ids) {
      const t = await getTask(n, id);
      const completed = (t.history as Array<{ to_status: string }>).filter((h) => h.to_status === 'completed');
      expect(completed, `task ${id}`).toHaveLength(1);
      expect(t.result).toMatchObject({ attempt: t.attempt });
    }
  }

  beforeAll(async () => {
    redisServer = await startRedisServer();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1, lazyConnect: false });
    redis.on('error', () => {});
    schema = await createPgSchema(PG_URL);
    secrets = clusterSecrets();
    // One after the other: the first creates the admin; migrations are advisory-locked anyway.
    a = await node(await startServerProcess('a', env()));
    b = await node(await startServerProcess('b', env()));
    lb = await startBalancer([a.proc.port, b.proc.port]);
  }, 120_000);

  afterAll(async () => {
    for (const ag of agents) ag.close();
    await lb?.close();
    await Promise.all([a?.proc.stop(), b?.proc.stop()]);
    if (failed) {
      for (const p of [a?.proc, b?.proc]) if (p) process.stderr.write(`--- ${p.name} (pid ${p.pid}) ---\n${p.output().slice(-6000)}\n`);
    }
    redis?.disconnect();
    await redisServer?.stop().catch(() => {});
    if (!failed && schema) await dropPgSchema(PG_URL, schema);
  }, 60_000);

  it('runs periodic jobs on exactly one process', async () => {
    const pid = await waitFor(leaderPid);
    expect([a.proc.pid, b.proc.pid]).toContain(pid);
    const elected = [a, b].map((n) => n.proc.logs('elected leader for periodic jobs').length);
    expect(elected.sort()).toEqual([0, 1]);
    expect((pid === a.proc.pid ? a : b).proc.logs('elected leader for periodic jobs')).toHaveLength(1);
  });

  it('delegates a task created through process A to an agent connected to process B, by wake-up not by the safety net', async () => {
    const agent = await registerAgent(a, 'mp-b-agent', 'cap_cross', 'complete');
    await agent.connect(b.proc.url);
    await waitFor(async () => (await servedBy('mp-b-agent')) === b.proc.pid);
    const latencies: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const id = await createTask(a, 'cap_cross');
      const created = performance.now();
      ids.push(id);
      await waitFor(() => agent.delivered.some((d) => d.task_id === id), 5000, 1);
      latencies.push(performance.now() - created);
    }
    await expectCompletedOnce(a, ids);
    latencies.sort((x, y) => x - y);
    process.stdout.write(`cross-process delegation (POST on A → task:delegate on B's agent), 10 tasks: median ${latencies[5]!.toFixed(1)} ms, max ${latencies[9]!.toFixed(1)} ms\n`);
    // Far below the 30 s safety net: the wake-up travelled over Redis pub/sub.
    expect(latencies[9]).toBeLessThan(5000);
    agent.close();
  });

  it('shows an agent\'s live load and busy status on the process that does not serve it', async () => {
    const agent = await registerAgent(a, 'mp-load', 'cap_load', 'hold', 2);
    await agent.connect(b.proc.url);
    await waitFor(async () => (await servedBy('mp-load')) === b.proc.pid);
    const ids = [await createTask(a, 'cap_load'), await createTask(a, 'cap_load')];
    await waitFor(() => agent.held.size === 2, 5000, 5);
    // B counts the leases; A learns them from the agent's next heartbeat (every second here).
    const seen = await waitFor(async () => {
      const v = await a.api<{ load: number; status: string }>('GET', '/api/v1/agents/mp-load', { token: a.token });
      return v.body.load === 2 && v.body.status === 'busy';
    }, 5000, 100);
    expect(seen).toBe(true);
    await agent.finish();
    await expectCompletedOnce(a, ids);
    expect(await waitFor(async () => (await a.api<{ load: number; status: string }>('GET', '/api/v1/agents/mp-load', { token: a.token })).body.load === 0, 5000, 100)).toBe(true);
    agent.close();
  });

  it('delivers subscription events across processes with one monotonic seq per task', async () => {
    const agent = await registerAgent(a, 'mp-sub-agent', 'cap_sub', 'complete');
    await agent.connect(b.proc.url);
    const { socket: sup, events } = await subscribeToTasks(a);
    // Created on A (event emitted by A), assigned and completed on B (events emitted by B).
    const id = await createTask(a, 'cap_sub');
    await waitFor(() => events.some((e) => e.task_id === id && e.name === 'task:completed'), 10_000);
    const mine = events.filter((e) => e.task_id === id);
    expect(mine.map((e) => e.name)).toEqual(['task:created', 'task:assigned', 'task:completed']);
    expect(mine.map((e) => e.seq)).toEqual([1, 2, 3]);
    // And the other way round: a subscriber on B sees a task created on B whose agent is on A.
    const agentA = await registerAgent(b, 'mp-sub-agent-a', 'cap_sub_a', 'complete');
    await agentA.connect(a.proc.url);
    const { socket: supB, events: seenB } = await subscribeToTasks(b);
    const id2 = await createTask(b, 'cap_sub_a');
    await waitFor(() => seenB.some((e) => e.task_id === id2 && e.name === 'task:completed'), 10_000);
    expect(seenB.filter((e) => e.task_id === id2).map((e) => `${e.name}#${e.seq}`)).toEqual(['task:created#1', 'task:assigned#2', 'task:completed#3']);
    sup.close();
    supB.close();
    agent.close();
    agentA.close();
  });

  it('shares rate limits across processes', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) {
      const n = i % 2 === 0 ? a : b;
      statuses.push((await n.api('GET', '/api/v1/health/detailed', { token: a.token })).status);
    }
    // 12 per minute for the principal in total, not 12 per process.
    expect(statuses.filter((s) => s === 200)).toHaveLength(12);
    expect(statuses.slice(12)).toEqual([429, 429]);
  });

  it('keeps every acknowledged task through a Redis restart (503 + Retry-After once what was granted ahead is used), and rebuilds coordination state', async () => {
    const onA = await registerAgent(a, 'mp-redis-a', 'cap_redis', 'complete', 5);
    const onB = await registerAgent(b, 'mp-redis-b', 'cap_redis', 'complete', 5);
    await onA.connect(a.proc.url, true);
    await onB.connect(b.proc.url, true);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await createTask(i % 2 ? b : a, 'cap_redis'));
    await redisServer.stop();
    // Rate limiting needs Redis: the points the process claimed ahead (its allowance, at most
    // 100 for this limit) are still granted — those tasks are acknowledged and must not be
    // lost — then a clear, retryable 503 rather than a wrong answer.
    const before = ids.length;
    let down: Awaited<ReturnType<typeof a.api<{ task_id: string }>>> | undefined;
    for (let i = 0; i < 200 && !down; i++) {
      const r = await a.api<{ task_id: string }>('POST', '/api/v1/tasks', { token: a.token, body: { task_type: 'mp', required_capabilities: ['cap_redis'] } });
      if (r.status === 201) ids.push(r.body.task_id);
      else down = r;
    }
    expect(ids.length - before).toBeLessThanOrEqual(100);
    expect(down?.status).toBe(503);
    expect((down?.body as unknown as { error: { code: string } }).error.code).toBe('SERVICE_UNAVAILABLE');
    expect(Number(down?.headers.get('retry-after'))).toBeGreaterThan(0);
    await redisServer.start(); // empty
    for (let i = 0; i < 20; i++) ids.push(await waitFor(async () => {
      const r = await (i % 2 ? b : a).api<{ task_id: string }>('POST', '/api/v1/tasks', { token: a.token, body: { task_type: 'mp', required_capabilities: ['cap_redis'], parameters: { n: i } } });
      return r.status === 201 && r.body.task_id;
    }, 10_000, 100));
    await expectCompletedOnce(a, ids, 30_000);
    // Rebuilt from what the processes hold: presence of the connected agents, a leader.
    await waitFor(async () => (await servedBy('mp-redis-a')) === a.proc.pid && (await servedBy('mp-redis-b')) === b.proc.pid, 10_000, 100);
    expect([a.proc.pid, b.proc.pid]).toContain(await waitFor(leaderPid, 10_000));
    const stillActive = await a.api('GET', '/api/v1/agents/mp-redis-b', { token: a.token });
    expect(stillActive.body.status).not.toBe('offline');
    onA.close();
    onB.close();
  }, 60_000);

  it('survives kill -9 of a process with agents and tasks in flight: agents move to the other process, leases resume, nothing lost or completed twice', async () => {
    const victim = (await waitFor(leaderPid)) === a.proc.pid ? a : b;
    const survivor = victim === a ? b : a;
    const held: TestAgent[] = [];
    for (let i = 0; i < 4; i++) {
      const ag = await registerAgent(survivor, `mp-kill-${i}`, 'cap_kill', 'hold', 2);
      await ag.connect(lb.url, true);
      held.push(ag);
    }
    const pids = await Promise.all(held.map((ag) => waitFor(() => servedBy(ag.id))));
    expect(pids.filter((p) => p === victim.proc.pid).length).toBeGreaterThan(0);
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await createTask(survivor, 'cap_kill'));
    // Every task leased and running on some agent (4 agents × 2 slots = 8).
    await waitFor(async () => {
      for (const id of ids) if ((await getTask(survivor, id)).status !== 'running') return false;
      return true;
    }, 10_000, 50);
    const onVictim = held.filter((_, i) => pids[i] === victim.proc.pid);
    const inFlightOnVictim = onVictim.flatMap((ag) => [...ag.held.keys()]);
    expect(inFlightOnVictim.length).toBeGreaterThan(0);
    // More work queued behind them (no free slot), created on the survivor.
    for (let i = 0; i < 4; i++) ids.push(await createTask(survivor, 'cap_kill'));

    // One more agent, on the victim, with room for capacity grants (max 8: the survivor may hold
    // 2 tokens). Tasks created on the survivor are leased to it in the survivor's own insert —
    // also right after the victim died, before the survivor notices: leases only PostgreSQL knows
    // of, handed over when the agent reconnects to the survivor. Set up last, right before the
    // kill: tokens left unused for 2 s go back to the granter.
    const grantAgent = await registerAgent(survivor, 'mp-kill-grant', 'cap_kill_grant', 'hold', 8);
    for (let tries = 0; ; tries++) {
      await grantAgent.connect(lb.url, true);
      if (await waitFor(async () => (await servedBy(grantAgent.id)) === victim.proc.pid, 1000, 20).then(() => true, () => false)) break;
      expect(tries).toBeLessThan(4);
      grantAgent.close(); // the balancer alternates: the next connection goes to the other process
    }
    const grantMsgs: Array<{ kind: string; slots?: Array<{ agent_id: string; add: number }>; tasks?: Array<{ task_id: string }> }> = [];
    const sub = redis.duplicate();
    await sub.subscribe(`${PREFIX}ch:engine:grant`);
    sub.on('message', (_channel: string, text: string) => { grantMsgs.push(JSON.parse(text.slice(text.indexOf('\u0001') + 1))); });
    const grantsFor = () => grantMsgs.filter((m) => m.kind === 'grant' && m.slots?.some((g) => g.agent_id === grantAgent.id && g.add > 0)).length;
    const grantIds = [await createTask(survivor, 'cap_kill_grant')]; // through the wake-up: the victim leases it and grants tokens
    await waitFor(() => grantsFor() > 0, 5000, 20);
    await new Promise((r) => setTimeout(r, 100));
    grantIds.push(await createTask(survivor, 'cap_kill_grant')); // leased at insert on the survivor
    await waitFor(() => grantMsgs.some((m) => m.kind === 'deliver' && m.tasks?.some((t) => t.task_id === grantIds[1])), 5000, 20);
    await waitFor(() => grantsFor() > 1, 5000, 20); // topped up again after that delivery
    await waitFor(() => grantAgent.held.size === 2, 5000, 20);
    await victim.proc.kill9();
    // The survivor still holds the dead victim's tokens: these are leased at insert to its agent.
    for (let i = 0; i < 2; i++) grantIds.push(await createTask(survivor, 'cap_kill_grant'));
    await waitFor(() => grantIds.slice(2).every((id) => grantMsgs.some((m) => m.kind === 'deliver' && m.tasks?.some((t) => t.task_id === id))), 5000, 20);

    // Agents reconnect through the balancer to the survivor…
    await waitFor(async () => {
      for (const ag of onVictim) if (!ag.socket.connected || (await servedBy(ag.id)) !== survivor.proc.pid) return false;
      return true;
    }, 15_000, 50);
    // …and the survivor takes over the periodic jobs.
    await waitFor(async () => (await leaderPid()) === survivor.proc.pid, 10_000, 100);
    // Leases resume: the in-flight tasks are still theirs, same attempt, not timed out.
    for (const id of inFlightOnVictim) expect(await getTask(survivor, id)).toMatchObject({ status: 'running', attempt: 1 });
    // The agent with granted capacity reconnects too, and gets the leases made after the kill.
    await waitFor(async () => grantAgent.socket.connected && (await servedBy(grantAgent.id)) === survivor.proc.pid, 15_000, 50);
    await waitFor(() => grantAgent.held.size === 4, 10_000, 50);
    for (const id of grantIds.slice(0, 2)) expect(await getTask(survivor, id)).toMatchObject({ status: 'running', attempt: 1 });
    for (const ag of [...held, grantAgent]) await ag.finish();
    for (const ag of [...held, grantAgent]) for (const [id, r] of ag.results) expect(r, `result of ${id}`).toMatchObject({ ok: true });
    await expectCompletedOnce(survivor, [...ids, ...grantIds], 30_000);
    for (const id of grantIds) expect((await getTask(survivor, id)).attempt).toBe(1);
    sub.disconnect();
    for (const id of inFlightOnVictim) expect((await getTask(survivor, id)).attempt).toBe(1);
    const deliveredIds = held.flatMap((ag) => ag.delivered.map((d) => `${d.task_id}#${d.attempt}`));
    expect(new Set(deliveredIds).size).toBe(deliveredIds.length);
    expect(new Set(grantAgent.delivered.map((d) => d.task_id))).toEqual(new Set(grantIds));
    for (const ag of [...held, grantAgent]) ag.close();
  }, 60_000);
});
