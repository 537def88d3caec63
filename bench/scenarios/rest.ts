/**
 * Scenario 4, REST latency under load with autocannon (in this process; the server is a child):
 * a read route (GET /api/v1/tasks/{id}), a list route (GET /api/v1/agents) and the create route
 * (POST /api/v1/tasks). Each route twice: closed loop (`connections` clients as fast as they
 * can: the route's capacity, autocannon) and open loop at a fixed offered rate (`rate` req/s,
 * evenly spaced, `lib/open-loop.ts`: the issue's "p95 at 1,000 req/s"). Every response time is
 * collected, so p95 is exact (autocannon's own summary has no p95).
 *
 * Each route is first driven closed loop for `warmupSeconds`, not measured: a server fresh from
 * start runs its request path unoptimised by the JIT (GET /tasks/{id}: about 1,000 µs of server
 * CPU per request in its first 6 s against 450–600 µs after), and a server in production is
 * warm — as in scenario 3, whose measured phases follow a warm-up phase.
 */
import autocannon from 'autocannon';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { registerAgents, withServerLog } from '../lib/server-process.ts';
import { openLoop } from '../lib/open-loop.ts';
import { percentiles, round } from '../lib/stats.ts';

export interface RestParams { seconds: number; connections: number; rate: number; warmupSeconds: number }

export function restParams(smoke: boolean): RestParams {
  return smoke ? { seconds: 1, connections: 10, rate: 100, warmupSeconds: 1 } : { seconds: 10, connections: 20, rate: 1000, warmupSeconds: 5 };
}

function cannon(opts: { url: string; method: string; token: string; body?: unknown; seconds: number; connections: number }) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const times: number[] = [];
    const codes: Record<string, number> = {};
    const inst = autocannon({
      url: opts.url, method: opts.method, duration: opts.seconds, connections: opts.connections, timeout: 10,
      headers: { authorization: `Bearer ${opts.token}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    }, (err, r) => {
      if (err) return reject(err);
      const p = percentiles(times);
      resolve({
        requests: r.requests.total, rps: round(r.requests.average, 1), errors: r.errors, timeouts: r.timeouts, non_2xx: r.non2xx, status_codes: codes,
        latency_ms: p,
      });
    });
    inst.on('response', (_c, status, _b, ms) => {
      times.push(ms);
      codes[status] = (codes[status] ?? 0) + 1;
    });
  });
}

export async function runRest(ctx: BenchContext, p: RestParams) {
  const store = ctx.defaultEngine;
  ctx.log(`rest on ${engineLabel(store)}: ${p.connections} connections, ${p.seconds} s per route`);
  const server = await ctx.server({ ...store, builtinAgents: false, label: 'rest' });
  try {
    await registerAgents(server.api, 20, { capabilities: ['noop'], max_concurrent_tasks: 5, prefix: 'rest' });
    const task = await server.api.expect<{ task_id: string }>(201, 'POST', '/api/v1/tasks', { task_type: 'noop', required_capabilities: ['noop'], parameters: { text: 'hello' } });
    const routes = [
      { route: 'GET /api/v1/tasks/{id}', method: 'GET', path: `/api/v1/tasks/${task.task_id}` },
      { route: 'GET /api/v1/agents', method: 'GET', path: '/api/v1/agents' },
      { route: 'POST /api/v1/tasks', method: 'POST', path: '/api/v1/tasks', body: { task_type: 'noop', required_capabilities: ['noop'], parameters: { text: 'hello' } } },
    ];
    const results = [];
    for (const r of routes) {
      const warmup = await cannon({ url: `${server.url}${r.path}`, method: r.method, token: server.adminToken, body: r.body, seconds: p.warmupSeconds, connections: p.connections });
      ctx.log(`  ${r.route} warm-up (not measured): ${warmup.rps} req/s`);
      for (const rate of [undefined, p.rate]) {
        // Open loop needs enough connections that a slow response does not hold the rate back.
        const connections = rate ? p.connections * 2 : p.connections;
        const out = rate
          ? await openLoop({ url: `${server.url}${r.path}`, method: r.method, headers: { authorization: `Bearer ${server.adminToken}`, ...(r.body ? { 'content-type': 'application/json' } : {}) }, body: r.body ? JSON.stringify(r.body) : undefined, rate, seconds: p.seconds, connections })
          : await cannon({ url: `${server.url}${r.path}`, method: r.method, token: server.adminToken, body: r.body, seconds: p.seconds, connections });
        const l = out.latency_ms as ReturnType<typeof percentiles>;
        ctx.log(`  ${r.route} ${rate ? `at ${rate}/s` : 'closed loop'}: ${out.rps} req/s, p50 ${l.p50} p95 ${l.p95} p99 ${l.p99} ms, non-2xx ${out.non_2xx}`);
        results.push({ route: r.route, connections, offered_per_s: rate ?? null, seconds: p.seconds, ...out });
      }
    }
    return { store: engineLabel(store), routes: results, server_rss_mb: round(server.rssKb() / 1024, 1) };
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await server.stop();
  }
}
