/**
 * Health and readiness transitions of a real server, and /health/detailed's queue depths and
 * event-loop lag. The store is opened by the test (the server does not own it) so the test can
 * take it away underneath the running server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { openDb, type Db } from '../../src/store/index.ts';
import { http, parseExposition, find } from '../deploy/prom-text.ts';

const ADMIN_PASSWORD = 'admin-password-123';
let server: McpServer;
let db: Db;
let base: string;
let admin: string;

beforeAll(async () => {
  db = await openDb({ inMemory: true });
  const config = loadConfig({
    env: {},
    overrides: { 'server.port': 0, 'server.ws_port': 0, 'store.data_dir': ':memory:', 'log.level': 'silent', 'auth.admin_password': ADMIN_PASSWORD, 'agents.builtin': false, 'limits.health_per_min': 1000 },
  });
  server = await startServer({ config, db });
  base = server.url;
  const login = await http(base, 'POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  expect(login.status).toBe(200);
  admin = login.json.access_token;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.close().catch(() => {});
});

describe('health while the store is up', () => {
  it('is live, ready and healthy right after start', async () => {
    const live = await http(base, 'GET', '/api/v1/live');
    expect(live.status).toBe(200);
    expect(live.json.status).toBe('alive');
    const ready = await http(base, 'GET', '/api/v1/ready');
    expect(ready.status).toBe(200);
    expect(ready.json.status).toBe('ready');
    const health = await http(base, 'GET', '/api/v1/health');
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({ status: 'healthy', version: server.services.version });
    expect(health.json.checks).toBeUndefined(); // public callers get the summary only
    const authed = await http(base, 'GET', '/api/v1/health', { token: admin });
    expect(authed.json.checks.database.status).toBe('healthy');
  });

  it('/health/detailed reports queue depths by priority and event-loop lag', async () => {
    for (const priority of [8, 8, 3]) {
      const r = await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'sentiment_analysis', parameters: { text: 'x' }, priority } });
      expect(r.status).toBe(201);
    }
    const d = await http(base, 'GET', '/api/v1/health/detailed', { token: admin });
    expect(d.status).toBe(200);
    expect(d.json.queues).toEqual({ pending: 3, by_priority: { '8': 2, '3': 1 }, retrying: 0, running: 0, dead_letter: 0 });
    const lag = d.json.event_loop;
    for (const k of ['mean_ms', 'p50_ms', 'p99_ms', 'max_ms', 'window_ms']) {
      expect(typeof lag[k], k).toBe('number');
      expect(lag[k], k).toBeGreaterThanOrEqual(0);
    }
    expect(lag.p99_ms).toBeGreaterThanOrEqual(lag.p50_ms);
    expect(lag.max_ms).toBeLessThan(5000);
    expect(d.json.resources.rss_bytes).toBeGreaterThan(0);
  });

  it('/health/detailed needs system:health', async () => {
    expect((await http(base, 'GET', '/api/v1/health/detailed')).status).toBe(401);
  });
});

describe('health after the store goes away', () => {
  it('/ready turns 503, /health unhealthy, /live stays 200, and /metrics still answers without store-read gauges', async () => {
    await db.close();
    const ready = await http(base, 'GET', '/api/v1/ready');
    expect(ready.status).toBe(503);
    expect(ready.json.status).toBe('not_ready');
    const health = await http(base, 'GET', '/api/v1/health');
    expect(health.json.status).toBe('unhealthy');
    expect(health.text).not.toMatch(/PGlite|SELECT|stack/i);
    expect((await http(base, 'GET', '/api/v1/live')).status).toBe(200);

    const m = await http(base, 'GET', '/metrics');
    expect(m.status).toBe(200);
    const e = parseExposition(m.text);
    expect(find(e, 'mcp_task_queue_depth')).toHaveLength(0); // absent, not stale
    expect(find(e, 'mcp_agents_active')).toHaveLength(0);
    expect(find(e, 'mcp_request_duration_seconds_count').length).toBeGreaterThan(0); // in-process metrics survive
  });
});
