/**
 * Built-in agents with several server processes (SPEC §7.4): two real `src/main.ts` processes on
 * one PostgreSQL schema and a private Redis, built-ins on (the default). Each process runs its
 * own built-in agent (one shared id let every process that started requeue the leases the
 * others' built-ins were working on); a specialised agent connected to process B gets the tasks
 * created through process A while it has room, not A's built-in; pipelines still run end to end
 * on the built-ins of either process; a built-in whose process is killed goes offline like any
 * agent whose heartbeats stop, while the other process's stays active.
 */
import { hostname } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../helpers/stores.ts';
import { makeApi, waitFor, type Api } from '../helpers/server.ts';
import { builtinAgentId } from '../../src/builtin/index.ts';
import { clusterSecrets, hasRedisServer, startRedisServer, startServerProcess, type RedisServer, type ServerProcess } from '../helpers/processes.ts';

const PG_URL = process.env.MCP_TEST_PG_URL ?? '';
const ADMIN_PASSWORD = 'builtin-processes-admin-1';

interface Node { proc: ServerProcess; api: Api; token: string }
interface AgentView { agent_id: string; status: string; builtin: boolean; tags: string[] }

describe.skipIf(!PG_URL || !hasRedisServer())('built-in agents on several server processes', () => {
  let redisServer: RedisServer;
  let schema: string;
  let a: Node;
  let b: Node;
  const sockets: Socket[] = [];
  let failed = false;
  afterEach((ctx) => { if (ctx.task.result?.state === 'fail') failed = true; });

  async function node(proc: ServerProcess): Promise<Node> {
    const api = makeApi(proc.url);
    const login = await api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    expect(login.status).toBe(200);
    return { proc, api, token: login.body.access_token };
  }

  beforeAll(async () => {
    redisServer = await startRedisServer();
    schema = await createPgSchema(PG_URL);
    const env = {
      DATABASE_URL: pgUrlWithSchema(PG_URL, schema), REDIS_URL: redisServer.url, MCP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      // Heartbeat silence that marks an agent offline: 5 s (10 s if the leader never saw it alive: the REST timeout).
      MCP_AGENT_TIMEOUT_SECONDS: '5', MCP_AGENT_REST_TIMEOUT_SECONDS: '10', MCP_SWEEP_INTERVAL_MS: '200', MCP_RATE_LIMIT_DEFAULT: '100000', MCP_RATE_LIMIT_TASK_CREATE: '100000', MCP_RATE_LIMIT_REGISTER: '100000', ...clusterSecrets(),
    };
    a = await node(await startServerProcess('a', env));
    b = await node(await startServerProcess('b', env));
  }, 120_000);

  afterAll(async () => {
    for (const s of sockets) s.close();
    await Promise.all([a?.proc.stop(), b?.proc.stop()]);
    if (failed) for (const p of [a?.proc, b?.proc]) if (p) process.stderr.write(`--- ${p.name} ---\n${p.output().slice(-6000)}\n`);
    await redisServer?.stop().catch(() => {});
    if (!failed && schema) await dropPgSchema(PG_URL, schema);
  }, 60_000);

  it('runs one built-in agent per process, each with its own id, both active', async () => {
    const r = await a.api<{ agents: AgentView[] }>('GET', '/api/v1/agents?type=pipeline-worker', { token: a.token });
    expect(r.status).toBe(200);
    const builtins = r.body.agents.filter((x) => x.builtin);
    expect(builtins).toHaveLength(2);
    const expected = [a, b].map((n) => builtinAgentId({ severalProcesses: true, host: hostname(), port: n.proc.port }));
    expect(new Set(builtins.map((x) => x.agent_id))).toEqual(new Set(expected));
    expect(expected[0]).toMatch(/^builtin-[A-Za-z0-9_-]+-\d+$/);
    expect(builtins.every((x) => x.status === 'active')).toBe(true);
  });

  it('gives a task created through A to a specialised agent connected to B while it has room, not to A\'s built-in', async () => {
    const reg = await a.api<{ access_token: string }>('POST', '/api/v1/agents/register', {
      token: a.token, body: { agent_id: 'emotion-specialist', name: 'specialist', type: 'emotion-analyzer', capabilities: ['emotion_analysis'], version: '1.0.0', max_concurrent_tasks: 10 },
    });
    expect(reg.status).toBe(201);
    const got: string[] = [];
    const socket = io(`${b.proc.url}/mcp/ws`, { auth: { token: reg.body.access_token }, transports: ['websocket'], forceNew: true, reconnection: false });
    sockets.push(socket);
    socket.on('task:delegate', (t: { task_id: string; attempt: number }, ack?: (r: unknown) => void) => {
      got.push(t.task_id);
      ack?.({ ok: true });
      void socket.timeout(5000).emitWithAck('task:result', { task_id: t.task_id, attempt: t.attempt, success: true, data: { by: 'specialist' } });
    });
    await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('connect_error', reject); });
    await new Promise((r) => setTimeout(r, 300)); // B tells A its agent has room (on change: within milliseconds)

    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await a.api<{ task_id: string }>('POST', '/api/v1/tasks', { token: a.token, body: { task_type: 'emotion_analysis', parameters: { text: `I feel hopeful today ${i}` } } });
      expect(r.status, r.text).toBe(201);
      ids.push(r.body.task_id);
    }
    await waitFor(async () => {
      for (const id of ids) if ((await a.api<{ status: string }>('GET', `/api/v1/tasks/${id}`, { token: a.token })).body.status !== 'completed') return false;
      return true;
    }, 15_000, 100);
    for (const id of ids) {
      const t = await a.api<{ assigned_agent: string; result: unknown }>('GET', `/api/v1/tasks/${id}`, { token: a.token });
      expect(t.body.assigned_agent).toBe('emotion-specialist');
      expect(t.body.result).toEqual({ by: 'specialist' });
    }
    expect(got.sort()).toEqual([...ids].sort());
  });

  it('runs a techdeck pipeline created through either process to completion on the built-ins', async () => {
    const ids: string[] = [];
    for (const n of [a, b]) {
      const r = await n.api<{ pipeline_id: string }>('POST', '/api/v1/pipelines', {
        token: n.token, body: { template: 'techdeck', input_data: { text: 'Therapist: How are you feeling this week?\nClient: A bit anxious, but better than last week.' } },
      });
      expect(r.status, r.text).toBe(201);
      ids.push(r.body.pipeline_id);
    }
    await waitFor(async () => {
      for (const id of ids) if ((await a.api<{ status: string }>('GET', `/api/v1/pipelines/${id}`, { token: a.token })).body.status !== 'completed') return false;
      return true;
    }, 30_000, 200);
    const r = await a.api<{ tasks: Array<{ assigned_agent: string }> }>('GET', `/api/v1/tasks?pipeline_id=${ids[0]}&limit=100`, { token: a.token });
    expect(r.body.tasks).toHaveLength(6);
    expect(r.body.tasks.every((t) => t.assigned_agent.startsWith('builtin-'))).toBe(true);
  });

  it('marks the built-in agent of a killed process offline, and keeps the other one active', async () => {
    const ofA = builtinAgentId({ severalProcesses: true, host: hostname(), port: a.proc.port });
    const ofB = builtinAgentId({ severalProcesses: true, host: hostname(), port: b.proc.port });
    await a.proc.kill9();
    const status = async (id: string) => (await b.api<{ status: string }>('GET', `/api/v1/agents/${id}`, { token: b.token })).body.status;
    await waitFor(async () => (await status(ofA)) === 'offline', 30_000, 200);
    expect(await status(ofA)).toBe('offline');
    expect(await status(ofB)).toBe('active');
    const health = async (id: string) => (await b.api<{ status: string }>('GET', `/api/v1/agents/${id}/health`, { token: b.token })).body.status;
    expect(await health(ofA)).toBe('unhealthy');
    expect(await health(ofB)).toBe('healthy');
  }, 60_000);
});
