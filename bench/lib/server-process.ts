/**
 * Starts the real server as a child process on loopback (`node --import tsx src/main.ts`, the
 * same thing `npx tsx src/main.ts` runs, minus the wrapper processes, so the child's pid is the
 * server's and /proc/<pid>/status reads its memory). PGlite in a temp data dir, or a fresh
 * PostgreSQL schema; Redis when asked. Rate limits raised so the limiter never shapes a figure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../../test/helpers/stores.ts';
import { Api } from './http.ts';
import { sleep } from './stats.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const ADMIN_PASSWORD = 'bench-admin-password-1';
const HUGE = '1000000000';

export interface ServerOptions {
  engine: 'pglite' | 'postgres';
  /** Redis URL for coordination, or '' for in-process. */
  redisUrl: string;
  pgUrl: string;
  builtinAgents: boolean;
  /** Extra environment (overrides the defaults below). */
  env?: Record<string, string>;
  /** Directory for a V8 CPU profile of the server (`--cpu-prof`), or ''. */
  cpuProfDir?: string;
  label: string;
}

export interface ServerHandle {
  url: string;
  wsUrl: string;
  pid: number;
  api: Api;
  adminToken: string;
  /** Resident set size of the server process in KiB (VmRSS). */
  rssKb(): number;
  /** Seconds from spawn to /ready answering 200. */
  startSeconds: number;
  /** SIGTERM, wait for exit (SIGKILL after 15 s), drop the schema / temp dir. */
  stop(): Promise<void>;
  output(): string;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function rssKbOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export async function startServer(o: ServerOptions): Promise<ServerHandle> {
  const port = await freePort();
  const wsPort = await freePort();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-bench-'));
  let schema = '';
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    NODE_ENV: 'development',
    CI: '',
    MCP_HOST: '127.0.0.1',
    MCP_PORT: String(port),
    MCP_WS_PORT: String(wsPort),
    MCP_DATA_DIR: dataDir,
    MCP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MCP_LOG_LEVEL: 'warn',
    MCP_LOG_PRETTY: 'false',
    MCP_BUILTIN_AGENTS: String(o.builtinAgents),
    MCP_USER_ACCESS_TTL: '7200',
    MCP_RATE_LIMIT_DEFAULT: HUGE,
    MCP_RATE_LIMIT_REGISTER: HUGE,
    MCP_RATE_LIMIT_TASK_CREATE: HUGE,
    MCP_RATE_LIMIT_DELEGATE: HUGE,
    MCP_RATE_LIMIT_HEALTH: HUGE,
    DATABASE_URL: '',
    REDIS_URL: o.redisUrl,
    ...(o.env ?? {}),
  };
  if (o.engine === 'postgres') {
    schema = await createPgSchema(o.pgUrl);
    env.DATABASE_URL = pgUrlWithSchema(o.pgUrl, schema);
    env.MCP_DB_POOL_SIZE ??= '20';
  }
  // The same V8 flag as `npm start` (a larger young generation: fewer scavenges under load).
  const args = ['--max-semi-space-size=64', '--import', 'tsx'];
  // One directory per server: V8 writes one profile per thread (main + the tsx loader thread).
  if (o.cpuProfDir) args.push('--cpu-prof', `--cpu-prof-dir=${path.join(o.cpuProfDir, `${o.label}-${Date.now()}`)}`);
  args.push('src/main.ts');
  const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-20_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));

  const cleanup = async () => {
    rmSync(dataDir, { recursive: true, force: true });
    if (schema) await dropPgSchema(o.pgUrl, schema).catch(() => {});
  };
  const url = `http://127.0.0.1:${port}`;
  const api = new Api(url);
  const started = Date.now();
  for (;;) {
    if (exited) {
      await cleanup();
      throw new Error(`server (${o.label}) exited during start:\n${out}`);
    }
    const r = await api.call('GET', '/api/v1/ready').catch(() => ({ status: 0 }));
    if (r.status === 200) break;
    if (Date.now() - started > 90_000) {
      child.kill('SIGKILL');
      await cleanup();
      throw new Error(`server (${o.label}) not ready after 90 s:\n${out}`);
    }
    await sleep(100);
  }
  const startSeconds = (Date.now() - started) / 1000;
  const login = await api.expect<{ access_token: string }>(200, 'POST', '/api/v1/auth/login', { username: 'admin', password: ADMIN_PASSWORD });
  api.token = login.access_token;

  return {
    url,
    wsUrl: `http://127.0.0.1:${wsPort}`,
    pid: child.pid!,
    api,
    adminToken: login.access_token,
    startSeconds,
    rssKb: () => rssKbOf(child.pid!),
    output: () => out,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exit;
        clearTimeout(t);
      }
      await cleanup();
    },
  };
}

export interface BenchAgent {
  agent_id: string;
  access_token: string;
}

/** Registers `n` agents over the real route (admin, rate limit raised), `concurrency` at a time. */
export async function registerAgents(api: Api, n: number, body: { capabilities: string[]; max_concurrent_tasks: number; prefix: string }, concurrency = 16): Promise<BenchAgent[]> {
  const out: BenchAgent[] = new Array<BenchAgent>(n);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) {
      const i = next++;
      const r = await api.expect<{ agent_id: string; access_token: string }>(201, 'POST', '/api/v1/agents/register', {
        agent_id: `${body.prefix}-${i}`, name: `bench ${body.prefix} ${i}`, type: 'general', capabilities: body.capabilities,
        version: '1.0.0', max_concurrent_tasks: body.max_concurrent_tasks,
      });
      out[i] = { agent_id: r.agent_id, access_token: r.access_token };
    }
  }));
  return out;
}

/** Appends the tail of the server's log to an error raised while it ran. */
export function withServerLog(err: unknown, server: Pick<ServerHandle, 'output'>): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const tail = server.output().split('\n').filter(Boolean).slice(-15).join('\n');
  if (tail) e.message = `${e.message}\n--- server log (tail) ---\n${tail}`;
  return e;
}
