/**
 * Pipelines with a connected remote agent: it takes the stage whose capability it declares
 * (built-in agents rank below it), and a run survives a real `kill -9` of the server process:
 * after a restart on the same store it continues from its last completed stage, redoing nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../helpers/stores.ts';
import { connectSocket, makeApi, registerAgent, startTestServer, waitFor, type Api, type TestServer } from '../helpers/server.ts';
import { loadFixture } from '../fixtures/transcripts/load-fixture.ts';

const TECHDECK = ['ingestion', 'standardization', 'validation', 'processing', 'quality_assessment', 'export'];

describe('remote agent takes a pipeline stage', () => {
  let t: TestServer;
  afterAll(async () => t?.stop());

  it('delegates `processing` to the connected remote agent and the rest to built-ins', async () => {
    t = await startTestServer();
    const a = await registerAgent(t, { agent_id: 'remote-processor', capabilities: ['processing'] });
    const seen: string[] = [];
    const s = await connectSocket(t.wsUrl, a.access_token, {
      setup: (sock) => sock.on('task:delegate', (task: { task_id: string; attempt: number; stage: string; parameters: { inputs: Record<string, unknown> } }, ack: (r: unknown) => void) => {
        ack({ ok: true });
        seen.push(task.stage);
        // The remote agent receives the validation stage's output as its input.
        const conversations = (task.parameters.inputs.validation as { conversations: unknown[] }).conversations;
        sock.emit('task:result', { task_id: task.task_id, attempt: task.attempt, success: true, data: { redacted: true, remote: true, summary: { confidence: 0.9 }, conversations } });
      }),
    });
    const created = await t.api('POST', '/api/v1/pipelines', { token: t.adminToken, body: { template: 'techdeck', input_data: { format: 'text', content: loadFixture('session-50-turns.txt') }, parameters: { quality_thresholds: { confidence_min: 0 } } } });
    expect(created.status).toBe(201);
    const run = await waitFor(async () => {
      const r = await t.api('GET', `/api/v1/pipelines/${created.body.pipeline_id}`, { token: t.adminToken });
      return ['completed', 'failed', 'partially_completed'].includes(r.body.status) && r.body;
    }, 30_000);
    expect(seen).toEqual(['processing']);
    const tasks = (await t.api('GET', `/api/v1/tasks?pipeline_id=${created.body.pipeline_id}&limit=10`, { token: t.adminToken })).body.tasks as Array<{ stage: string; assigned_agent: string }>;
    const byStage = Object.fromEntries(tasks.map((x) => [x.stage, x.assigned_agent]));
    expect(byStage.processing).toBe('remote-processor');
    for (const stage of TECHDECK.filter((x) => x !== 'processing')) expect(byStage[stage], stage).toBe('builtin-local');
    expect(run.stages.find((x: { stage: string }) => x.stage === 'processing').status).toBe('completed');
    s.close();
  }, 120_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

async function startChild(env: Record<string, string>): Promise<{ child: ChildProcess; api: Api; url: string; wsUrl: string }> {
  const port = await freePort();
  const wsPort = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { ...process.env, ...env, MCP_PORT: String(port), MCP_WS_PORT: String(wsPort), MCP_HOST: '127.0.0.1', MCP_LOG_LEVEL: 'warn', MCP_LOG_PRETTY: 'false', CI: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  const url = `http://127.0.0.1:${port}`;
  const api = makeApi(url);
  await waitFor(async () => (await api('GET', '/api/v1/ready').catch(() => ({ status: 0 }))).status === 200, 60_000, 100).catch(() => {
    throw new Error(`server did not start:\n${output}`);
  });
  return { child, api, url, wsUrl: `http://127.0.0.1:${wsPort}` };
}

const pgUrl = process.env.MCP_TEST_PG_URL;

describe.skipIf(!pgUrl)('a run survives kill -9 of the server', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-durable-'));
  let schema = '';
  let child: ChildProcess | undefined;
  afterAll(async () => {
    child?.kill('SIGKILL');
    if (schema) await dropPgSchema(pgUrl!, schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('continues from the last completed stage after a restart, redoing nothing', async () => {
    schema = await createPgSchema(pgUrl!);
    const env = {
      DATABASE_URL: pgUrlWithSchema(pgUrl!, schema), MCP_DATA_DIR: dataDir, MCP_ADMIN_PASSWORD: 'admin-password-123',
      MCP_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), MCP_PASSWORD_PEPPER: 'durability-pepper', MCP_LEASE_GRACE_SECONDS: '1',
    };
    let s1 = await startChild(env);
    child = s1.child;
    const login = await s1.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } });
    const admin = login.body.access_token as string;
    const reg = await s1.api('POST', '/api/v1/agents/register', { token: admin, body: { agent_id: 'slow-processor', name: 'slow', type: 'general', capabilities: ['processing'], version: '1.0.0' } });
    // The remote agent accepts `processing` and is still working on it when the server dies.
    let held: { task_id: string; attempt: number; parameters: { inputs: { validation: { conversations: unknown[] } } } } | undefined;
    const first = await connectSocket(s1.wsUrl, reg.body.access_token, { setup: (sock) => sock.on('task:delegate', (t: typeof held, ack: (r: unknown) => void) => { held = t; ack({ ok: true }); }) });
    const created = await s1.api('POST', '/api/v1/pipelines', { token: admin, body: { template: 'techdeck', input_data: { format: 'text', content: loadFixture('session-50-turns.txt') } } });
    const id = created.body.pipeline_id as string;
    const before = await waitFor(async () => {
      const r = await s1.api('GET', `/api/v1/pipelines/${id}`, { token: admin });
      return r.body.stages?.find((x: { stage: string; status: string }) => x.stage === 'processing' && x.status === 'running') && r.body;
    }, 30_000);
    const taskIdsBefore = Object.fromEntries(before.stages.map((x: { stage: string; task_id: string }) => [x.stage, x.task_id]));
    first.close();

    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));

    s1 = await startChild(env);
    child = s1.child;
    const admin2 = (await s1.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } })).body.access_token as string;
    const tokens = await s1.api('POST', '/api/v1/auth/token', { body: { agent_id: 'slow-processor', api_key: reg.body.api_key } });
    // It reconnects to the restarted server and delivers the result of the lease it kept.
    const second = await connectSocket(s1.wsUrl, tokens.body.access_token);
    expect(held).toBeTruthy();
    const ack = await second.timeout(10_000).emitWithAck('task:result', { task_id: held!.task_id, attempt: held!.attempt, success: true, data: { redacted: true, summary: { confidence: 0.9 }, conversations: held!.parameters.inputs.validation.conversations } });
    expect(ack).toMatchObject({ ok: true, status: 'completed' });
    const after = await waitFor(async () => {
      const r = await s1.api('GET', `/api/v1/pipelines/${id}`, { token: admin2 });
      return ['completed', 'failed', 'partially_completed'].includes(r.body.status) && r.body;
    }, 60_000);
    expect(after.status).toBe('completed');
    for (const stage of ['ingestion', 'standardization', 'validation']) {
      const st = after.stages.find((x: { stage: string }) => x.stage === stage);
      expect(st.task_id, stage).toBe(taskIdsBefore[stage]);
    }
    const tasks = (await s1.api('GET', `/api/v1/tasks?pipeline_id=${id}&limit=50`, { token: admin2 })).body.tasks as Array<{ stage: string; status: string }>;
    for (const stage of TECHDECK) expect(tasks.filter((x) => x.stage === stage && x.status === 'completed'), stage).toHaveLength(1);
    second.close();
  }, 180_000);
});
