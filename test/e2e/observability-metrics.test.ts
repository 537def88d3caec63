/**
 * /metrics end to end: a real server, a scripted workload over real HTTP, then the exposition is
 * parsed and checked for names, label sets and values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/index.ts';
import { startServer, type McpServer } from '../../src/compose.ts';
import { eventually, find, http, parseExposition, total, type Exposition } from '../deploy/prom-text.ts';

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';
const ADMIN_PASSWORD = 'admin-password-123';
const HEALTH_LIMIT = 5;

const SPEC_METRICS: Record<string, { type: string; labels: string[] }> = {
  mcp_tasks_created_total: { type: 'counter', labels: ['task_type'] },
  mcp_tasks_completed_total: { type: 'counter', labels: ['task_type', 'status', 'agent_type'] },
  mcp_task_duration_seconds: { type: 'histogram', labels: [] },
  mcp_task_queue_depth: { type: 'gauge', labels: ['priority'] },
  mcp_agents_active: { type: 'gauge', labels: ['agent_type', 'status'] },
  mcp_pipelines_active: { type: 'gauge', labels: [] },
  mcp_pipeline_duration_seconds: { type: 'histogram', labels: ['template', 'status'] },
  mcp_request_duration_seconds: { type: 'histogram', labels: ['method', 'route', 'status'] },
  mcp_errors_total: { type: 'counter', labels: ['error_type', 'route'] },
  mcp_external_service_duration_seconds: { type: 'histogram', labels: ['service_name', 'operation'] },
  mcp_circuit_breaker_state: { type: 'gauge', labels: ['service_name'] },
  mcp_ws_connections: { type: 'gauge', labels: [] },
  mcp_ws_latency_seconds: { type: 'histogram', labels: [] },
  mcp_rate_limited_total: { type: 'counter', labels: ['route'] },
  mcp_security_alerts_total: { type: 'counter', labels: ['rule'] },
};

let server: McpServer;
let base: string;
let admin: string;
let agentId: string;
let agentToken: string;
const taskIds: string[] = [];
let probeCompleted: string;
let probeFailed: string;

async function scrape(token: string | undefined = METRICS_TOKEN): Promise<Exposition> {
  const r = await http(base, 'GET', '/metrics', { token });
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(r.text);
}

/** Leases a pending task to the agent the way the assignment engine does (fenced attempt). */
async function leaseTo(taskId: string, agent: string): Promise<number> {
  const { rows } = await server.services.db.query<{ attempt: number }>(
    `UPDATE tasks SET status = 'assigned', assigned_agent = $2, attempt = attempt + 1, assigned_at = now(), lease_expires_at = now() + interval '5 minutes', updated_at = now()
     WHERE task_id = $1 AND status = 'pending' RETURNING attempt`, [taskId, agent]);
  if (rows[0]) return rows[0].attempt;
  // Already assigned (an engine got there first): it must be ours, since only we hold the capability.
  const cur = await server.services.db.query<{ attempt: number; assigned_agent: string | null }>(`SELECT attempt, assigned_agent FROM tasks WHERE task_id = $1`, [taskId]);
  expect(cur.rows[0]?.assigned_agent).toBe(agent);
  return cur.rows[0]!.attempt;
}

beforeAll(async () => {
  const config = loadConfig({
    env: {},
    overrides: {
      'server.port': 0, 'server.ws_port': 0, 'store.data_dir': ':memory:', 'log.level': 'silent',
      'auth.admin_password': ADMIN_PASSWORD, 'agents.builtin': false,
      'security.metrics_token': METRICS_TOKEN, 'limits.health_per_min': HEALTH_LIMIT,
    },
  });
  server = await startServer({ config });
  base = server.url;

  // --- the scripted workload ---------------------------------------------------------------
  const login = await http(base, 'POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  expect(login.status).toBe(200);
  admin = login.json.access_token;

  const reg = await http(base, 'POST', '/api/v1/agents/register', {
    token: admin,
    body: { name: 'probe agent', type: 'emotion-analyzer', capabilities: ['obs_probe'], version: '1.0.0' },
  });
  expect(reg.status).toBe(201);
  agentId = reg.json.agent_id;
  const exchange = await http(base, 'POST', '/api/v1/auth/token', { body: { agent_id: agentId, api_key: reg.json.api_key } });
  expect(exchange.status).toBe(200);
  agentToken = exchange.json.access_token;

  // 3 sentiment tasks at priority 8, 2 emotion tasks at default priority 5: nobody can run them.
  for (let i = 0; i < 3; i++) {
    const r = await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'sentiment_analysis', parameters: { text: `t${i}` }, priority: 8 } });
    expect(r.status).toBe(201);
    taskIds.push(r.json.task_id);
  }
  for (let i = 0; i < 2; i++) {
    const r = await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'emotion_analysis', parameters: { text: `e${i}` } } });
    expect(r.status).toBe(201);
  }
  // Two probe tasks the agent completes / fails over HTTP.
  const mk = async () => {
    const r = await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'obs_probe', required_capabilities: ['obs_probe'], parameters: {}, max_retries: 0 } });
    expect(r.status).toBe(201);
    return r.json.task_id as string;
  };
  probeCompleted = await mk();
  probeFailed = await mk();
  const a1 = await leaseTo(probeCompleted, agentId);
  expect((await http(base, 'POST', `/api/v1/tasks/${probeCompleted}/accept`, { token: agentToken, body: { attempt: a1 } })).status).toBe(200);
  expect((await http(base, 'POST', `/api/v1/tasks/${probeCompleted}/complete`, { token: agentToken, body: { attempt: a1, result: { ok: true } } })).status).toBe(200);
  const a2 = await leaseTo(probeFailed, agentId);
  const fail = await http(base, 'POST', `/api/v1/tasks/${probeFailed}/fail`, { token: agentToken, body: { attempt: a2, error: { code: 'PROBE_FAILED', message: 'deliberate', retryable: false } } });
  expect(fail.status).toBe(200);

  // Reads, a 404 on a known route, a 404 on no route, and a 400.
  expect((await http(base, 'GET', `/api/v1/tasks/${taskIds[0]}`, { token: admin })).status).toBe(200);
  expect((await http(base, 'GET', `/api/v1/tasks/${randomUUID()}`, { token: admin })).status).toBe(404);
  expect((await http(base, 'GET', '/api/v1/no-such-thing/12345', { token: admin })).status).toBe(404);
  expect((await http(base, 'POST', '/api/v1/tasks', { token: admin, body: { task_type: 'sentiment_analysis', priority: 99 } })).status).toBe(400);

  // A rate-limited burst on the health class: HEALTH_LIMIT pass, 3 more are refused.
  const burst = [];
  for (let i = 0; i < HEALTH_LIMIT + 3; i++) burst.push((await http(base, 'GET', '/api/v1/health')).status);
  expect(burst.filter((s) => s === 429)).toHaveLength(3);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

describe('/metrics', () => {
  it('refuses without the token when MCP_METRICS_TOKEN is set, and with a wrong one', async () => {
    const none = await http(base, 'GET', '/metrics');
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('MISSING_AUTHENTICATION');
    expect(none.text).not.toContain('mcp_');
    const wrong = await http(base, 'GET', '/metrics', { token: 'not-the-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error.code).toBe('INVALID_TOKEN');
    // Refused scrapes count against the IP's budget (guessing the token ends in 429); the scraper's do not.
    expect(none.headers.get('x-ratelimit-limit')).not.toBeNull();
    expect(Number(wrong.headers.get('x-ratelimit-remaining'))).toBe(Number(none.headers.get('x-ratelimit-remaining')) - 1);
    expect((await http(base, 'GET', '/metrics', { token: METRICS_TOKEN })).headers.get('x-ratelimit-limit')).toBeNull();
    // a user's JWT is not the metrics token either
    expect((await http(base, 'GET', '/metrics', { token: admin })).status).toBe(401);
    // and it is served at the root only
    expect((await http(base, 'GET', '/api/v1/metrics', { token: METRICS_TOKEN })).status).toBe(404);
  });

  it('exports every SPEC §11 metric with exactly its labels, plus process metrics and event-loop lag', async () => {
    // Counters/histograms without labels only appear once observed: record one of each kind.
    server.metrics.externalCall('flask', 'analyze', 0.12);
    server.metrics.breakerState('flask', 'closed');
    server.metrics.wsLatencySeconds(0.004);
    server.services.bus.emit('system:security_alert', { alert_id: randomUUID(), rule: 'probe_rule', severity: 'low', message: 'test' });
    const e = await scrape();
    for (const [name, spec] of Object.entries(SPEC_METRICS)) {
      expect(e.types.get(name), name).toBe(spec.type);
      const suffix = spec.type === 'histogram' ? '_bucket' : '';
      const samples = find(e, name + suffix);
      if (spec.type === 'histogram' && name === 'mcp_pipeline_duration_seconds') continue; // no pipeline has finished in this run
      expect(samples.length, `${name} has samples`).toBeGreaterThan(0);
      for (const s of samples) {
        const keys = Object.keys(s.labels).filter((k) => k !== 'le').sort();
        expect(keys, name).toEqual([...spec.labels].sort());
      }
    }
    expect(e.types.get('process_cpu_user_seconds_total')).toBe('counter');
    expect(e.types.get('nodejs_heap_size_used_bytes')).toBe('gauge');
    expect(find(e, 'mcp_event_loop_lag_seconds').map((s) => s.labels.stat).sort()).toEqual(['max', 'mean', 'p50', 'p99']);
    for (const s of find(e, 'mcp_event_loop_lag_seconds')) expect(s.value).toBeGreaterThanOrEqual(0);
  });

  it('counts tasks created by type and the queue depth by priority from the store', async () => {
    const e = await scrape();
    expect(total(e, 'mcp_tasks_created_total', { task_type: 'sentiment_analysis' })).toBe(3);
    expect(total(e, 'mcp_tasks_created_total', { task_type: 'emotion_analysis' })).toBe(2);
    expect(total(e, 'mcp_tasks_created_total', { task_type: 'obs_probe' })).toBe(2);
    // the refused 400 created nothing
    expect(total(e, 'mcp_tasks_created_total')).toBe(7);
    expect(total(e, 'mcp_task_queue_depth', { priority: '8' })).toBe(3);
    expect(total(e, 'mcp_task_queue_depth', { priority: '5' })).toBe(2);
    expect(total(e, 'mcp_task_queue_depth', { priority: '1' })).toBe(0);
    expect(find(e, 'mcp_task_queue_depth')).toHaveLength(10);
    expect(total(e, 'mcp_pipelines_active')).toBe(0);
  });

  it('counts task outcomes with the executing agent type, and task durations', async () => {
    const e = await eventually(() => scrape(), (x) => total(x, 'mcp_tasks_completed_total') >= 2);
    expect(total(e, 'mcp_tasks_completed_total', { task_type: 'obs_probe', status: 'completed', agent_type: 'emotion-analyzer' })).toBe(1);
    expect(total(e, 'mcp_tasks_completed_total', { task_type: 'obs_probe', status: 'failed', agent_type: 'emotion-analyzer' })).toBe(1);
    expect(total(e, 'mcp_tasks_completed_total')).toBe(2);
    expect(total(e, 'mcp_task_duration_seconds_count')).toBe(1);
    expect(total(e, 'mcp_task_duration_seconds_sum')).toBeGreaterThanOrEqual(0);
  });

  it('reports active agents by type and status, excluding deleted ones', async () => {
    let e = await scrape();
    expect(total(e, 'mcp_agents_active', { agent_type: 'emotion-analyzer' })).toBe(1);
    const reg = await http(base, 'POST', '/api/v1/agents/register', { token: admin, body: { name: 'doomed', type: 'bias-detector', capabilities: ['bias_detection'], version: '1.0.0' } });
    expect(reg.status).toBe(201);
    e = await scrape();
    expect(total(e, 'mcp_agents_active', { agent_type: 'bias-detector', status: 'active' })).toBe(1);
    expect((await http(base, 'DELETE', `/api/v1/agents/${reg.json.agent_id}`, { token: admin })).status).toBe(204);
    e = await scrape();
    expect(total(e, 'mcp_agents_active', { agent_type: 'bias-detector' })).toBe(0);
  });

  it('labels request durations and errors with route patterns, never raw URLs or ids', async () => {
    const e = await scrape();
    const routes = new Set(find(e, 'mcp_request_duration_seconds_count').map((s) => s.labels.route));
    expect(routes).toContain('/api/v1/tasks/:task_id');
    expect(routes).toContain('/api/v1/tasks');
    expect(routes).toContain('/api/v1/auth/login');
    expect(routes).toContain('/api/v1/tasks/:task_id/complete');
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-/i;
    for (const s of e.samples) for (const v of Object.values(s.labels)) expect(v, `${s.name} ${JSON.stringify(s.labels)}`).not.toMatch(uuid);
    expect(e.samples.some((s) => Object.values(s.labels).some((v) => v.includes(agentId)))).toBe(false);
    expect(e.samples.some((s) => Object.values(s.labels).some((v) => v.includes('12345') || v.includes('no-such-thing')))).toBe(false);

    expect(total(e, 'mcp_request_duration_seconds_count', { method: 'GET', route: '/api/v1/tasks/:task_id', status: '200' })).toBe(1);
    expect(total(e, 'mcp_request_duration_seconds_count', { method: 'GET', route: '/api/v1/tasks/:task_id', status: '404' })).toBe(1);
    expect(total(e, 'mcp_request_duration_seconds_count', { method: 'POST', route: '/api/v1/tasks', status: '201' })).toBe(7);
    expect(total(e, 'mcp_request_duration_seconds_count', { method: 'POST', route: '/api/v1/tasks', status: '400' })).toBe(1);
    // the workload's /api/v1/no-such-thing/12345 and the first test's /api/v1/metrics
    expect(total(e, 'mcp_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBe(2);
    expect(total(e, 'mcp_errors_total', { error_type: 'TASK_NOT_FOUND', route: '/api/v1/tasks/:task_id' })).toBe(1);
    expect(total(e, 'mcp_errors_total', { error_type: 'VALIDATION_ERROR', route: '/api/v1/tasks' })).toBe(1);
    expect(total(e, 'mcp_errors_total', { error_type: 'NOT_FOUND', route: 'unmatched' })).toBe(2);
    expect(total(e, 'mcp_errors_total', { error_type: 'RATE_LIMIT_EXCEEDED', route: '/api/v1/health' })).toBe(3);
    // the refused /metrics calls of the first test are errors too
    expect(total(e, 'mcp_errors_total', { error_type: 'MISSING_AUTHENTICATION', route: '/metrics' })).toBeGreaterThanOrEqual(1);
  });

  it('counts rate-limited requests by route', async () => {
    const e = await scrape();
    expect(total(e, 'mcp_rate_limited_total', { route: '/api/v1/health' })).toBe(3);
    expect(total(e, 'mcp_rate_limited_total')).toBe(3);
    expect(total(e, 'mcp_request_duration_seconds_count', { route: '/api/v1/health', status: '429' })).toBe(3);
  });

  it('counts security alerts by rule and exposes the helper-fed metrics', async () => {
    const e = await scrape();
    expect(total(e, 'mcp_security_alerts_total', { rule: 'probe_rule' })).toBe(1);
    expect(total(e, 'mcp_external_service_duration_seconds_count', { service_name: 'flask', operation: 'analyze' })).toBe(1);
    expect(total(e, 'mcp_circuit_breaker_state', { service_name: 'flask' })).toBe(0);
    server.metrics.breakerState('flask', 'open');
    server.metrics.wsConnections.inc(2);
    const e2 = await scrape();
    expect(total(e2, 'mcp_circuit_breaker_state', { service_name: 'flask' })).toBe(2);
    expect(total(e2, 'mcp_ws_connections')).toBe(2);
    server.metrics.wsConnections.dec(2);
  });
});
