/**
 * Starts the whole server on ephemeral ports (real HTTP, real Socket.IO) for end-to-end tests,
 * on in-memory PGlite by default or on a PostgreSQL schema, plus small HTTP/socket helpers.
 */
import { io, type Socket } from 'socket.io-client';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Db } from '../../src/store/index.ts';

export const ADMIN_PASSWORD = 'admin-password-123';

export interface TestServer {
  server: McpServer;
  url: string;
  wsUrl: string;
  api: Api;
  adminToken: string;
  stop(): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON bodies
export type Api = <T = any>(method: string, path: string, opts?: { body?: unknown; token?: string; headers?: Record<string, string>; raw?: string }) => Promise<ApiResponse<T>>;

export function makeApi(base: string): Api {
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try { parsed = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body: parsed as never, headers: res.headers, text };
  };
}

/** Delegation tests: no built-in agents, fast retries, a short lease grace, limits out of the way. */
export const DELEGATION_CONFIG: Readonly<Record<string, unknown>> = {
  'agents.builtin': false, 'tasks.retry_base_ms': 20, 'tasks.retry_cap_ms': 100, 'tasks.lease_grace_seconds': 1,
  'limits.default_per_min': 100000, 'limits.task_create_per_min': 100000, 'limits.register_per_min': 100000,
};

export async function startTestServer(overrides: Record<string, unknown> = {}, opts: { db?: Db; env?: Record<string, string> } = {}): Promise<TestServer> {
  const config = loadConfig({
    env: opts.env ?? {},
    overrides: {
      'server.port': 0, 'server.ws_port': 0, 'server.host': '127.0.0.1', 'store.data_dir': ':memory:', 'log.level': 'silent',
      'auth.admin_password': ADMIN_PASSWORD, 'tasks.sweep_interval_ms': 100,
      ...overrides,
    },
  });
  const server = await startServer({ config, db: opts.db, logger: createLogger({ level: typeof overrides['log.level'] === 'string' ? overrides['log.level'] : 'silent' }) });
  const api = makeApi(server.url);
  const login = await api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  if (login.status !== 200) throw new Error(`admin login failed: ${login.status} ${login.text}`);
  return {
    server, url: server.url, wsUrl: `http://127.0.0.1:${server.wsPort}`, api, adminToken: login.body.access_token,
    stop: () => server.stop(),
  };
}

/** Creates a user with a role and returns its access token. */
export async function userToken(t: TestServer, role: string, username = `${role}-${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
  const password = 'password-for-tests-1';
  const r = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password, role } });
  if (r.status !== 201) throw new Error(`user create failed: ${r.status} ${r.text}`);
  const login = await t.api<{ access_token: string }>('POST', '/api/v1/auth/login', { body: { username, password } });
  return login.body.access_token;
}

export interface RegisteredAgent {
  agent_id: string;
  api_key: string;
  access_token: string;
  refresh_token: string;
}

export async function registerAgent(t: TestServer, body: Record<string, unknown> = {}): Promise<RegisteredAgent> {
  const r = await t.api<RegisteredAgent>('POST', '/api/v1/agents/register', {
    token: t.adminToken,
    body: { name: 'Test agent', type: 'general', capabilities: ['sentiment_analysis'], version: '1.0.0', ...body },
  });
  if (r.status !== 201) throw new Error(`register failed: ${r.status} ${r.text}`);
  return r.body;
}

/**
 * A connected socket.io-client; resolves once connected or rejects with the connect_error.
 * `setup` attaches listeners before connecting, as a real agent does (work may arrive at once).
 */
export function connectSocket(url: string, token: string, opts: { reconnection?: boolean; setup?: (s: Socket) => void } = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = io(`${url}/mcp/ws`, { auth: { token }, transports: ['websocket'], reconnection: opts.reconnection ?? false, forceNew: true, autoConnect: false });
    opts.setup?.(s);
    s.connect();
    s.once('connect', () => resolve(s));
    s.once('connect_error', (err) => { s.close(); reject(err); });
  });
}

export function waitFor<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 10_000, stepMs = 20): Promise<T> {
  const started = Date.now();
  // Made here, so that a timeout's stack names the caller's line (not this helper's timer).
  const timedOut = new Error(`waitFor timed out after ${timeoutMs} ms`);
  return new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const v = await fn();
        if (v) return resolve(v);
      } catch (err) {
        if (Date.now() - started > timeoutMs) return reject(err instanceof Error ? err : new Error(String(err)));
      }
      if (Date.now() - started > timeoutMs) return reject(timedOut);
      setTimeout(() => void tick(), stepMs);
    };
    void tick();
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- acks are arbitrary JSON
export function emitAck<T = any>(socket: Socket, event: string, payload: unknown, timeoutMs = 5000): Promise<T> {
  return socket.timeout(timeoutMs).emitWithAck(event, payload) as Promise<T>;
}
