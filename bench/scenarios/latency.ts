/**
 * Scenario 3, create → `task:delegate` latency at a fixed offered rate (open loop): single
 * POST /api/v1/tasks at `rate`/s for `seconds`, each carrying `parameters.sent_at` (and
 * `metadata.sent_at`), a high-resolution wall-clock timestamp taken just before the request.
 * The agents (another process, same machine) subtract it from their receive time.
 * `parameters` is used because the `task:delegate` payload (SPEC §8) carries the task's
 * parameters, not its metadata.
 */
import { AgentsWorker } from '../lib/agents-client.ts';
import type { ConnectResult, WorkerStats } from '../agents-worker.ts';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { registerAgents, withServerLog, type ServerHandle } from '../lib/server-process.ts';
import { openLoop } from '../lib/open-loop.ts';
import { ProcessCpu } from '../lib/process-cpu.ts';
import { percentiles, round, wallMs } from '../lib/stats.ts';

export interface LatencyParams {
  rates: number[];
  seconds: number;
  /** An unmeasured phase at the highest rate first (reported apart as `warmup`), so the measured phases see a warmed server. */
  warmupSeconds: number;
  agents: number;
  perAgent: number;
  drainMs: number;
}

export function latencyParams(smoke: boolean): LatencyParams {
  return smoke
    ? { rates: [50], seconds: 1, warmupSeconds: 1, agents: 10, perAgent: 20, drainMs: 30_000 }
    : { rates: [100, 500], seconds: 10, warmupSeconds: 5, agents: 50, perAgent: 20, drainMs: 60_000 };
}

export async function runLatency(ctx: BenchContext, p: LatencyParams) {
  const store = ctx.defaultEngine;
  ctx.log(`latency on ${engineLabel(store)}: ${p.rates.join(' and ')}/s for ${p.seconds} s, ${p.agents} agents`);
  const server = await ctx.server({ ...store, builtinAgents: false, label: 'latency' });
  const worker = await AgentsWorker.start();
  try {
    const agents = await registerAgents(server.api, p.agents, { capabilities: ['noop'], max_concurrent_tasks: p.perAgent, prefix: 'lat' });
    const conn = await worker.call<ConnectResult>({ cmd: 'connect', url: server.wsUrl, agents, socketsPerAgent: 1, concurrency: 50, timeoutMs: 30_000 });
    if (conn.connected !== p.agents) throw new Error(`only ${conn.connected}/${p.agents} agents connected`);
    const { warmup, runs } = await warmedPhases(ctx, server, worker, p);
    return { store: engineLabel(store), agents: p.agents, warmup, runs, server_rss_mb: round(server.rssKb() / 1024, 1) };
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await worker.stop();
    await server.stop();
  }
}

/**
 * The warm-up phase, then one measured phase per rate. A server fresh from start runs its request
 * path in V8's interpreter and baseline tiers until enough calls have gone through it: measured
 * on a 2-core host, a fresh process at 500/s answered with p50 29–47 ms where the same process,
 * warmed by one such phase, answered with p50 12–27 ms. A server in production is warm, so that is what
 * the measured phases report; the warm-up phase's own figures stay in the result.
 */
export async function warmedPhases(ctx: BenchContext, server: ServerHandle, worker: AgentsWorker, p: LatencyParams, serverPids = [server.pid]) {
  const warmup = await offered(ctx, server, worker, { ...p, rate: Math.max(...p.rates), seconds: p.warmupSeconds }, serverPids, 'warm-up, not measured');
  const runs = [];
  for (const rate of p.rates) runs.push(await offered(ctx, server, worker, { ...p, rate }, serverPids));
  return { warmup, runs };
}

/** One phase: single creates through `server` at `p.rate`; CPU counted for `serverPids`, the agents, PostgreSQL, Redis and this process. */
async function offered(ctx: BenchContext, server: ServerHandle, worker: AgentsWorker, p: LatencyParams & { rate: number }, serverPids: number[], label = '') {
  await worker.call({ cmd: 'reset' });
  const cpu = ProcessCpu.start({ server: serverPids, agents: [worker.pid] });

  const total = p.rate * p.seconds;
  // Open loop over keep-alive sockets (lib/open-loop.ts): a cheap client, so the load
  // generator takes as little CPU from the 2 cores the server shares as it can.
  const load = await openLoop({
    url: `${server.url}/api/v1/tasks`, method: 'POST', rate: p.rate, seconds: p.seconds, connections: 64,
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: () => {
      const sentAt = wallMs();
      return JSON.stringify({ task_type: 'noop', required_capabilities: ['noop'], parameters: { sent_at: sentAt }, metadata: { sent_at: sentAt } });
    },
  });
  const sent = load.sent;
  const statuses: Record<string, number> = { ...load.status_codes, ...(load.errors ? { error: load.errors } : {}) };
  const offeredSeconds = load.send_seconds;
  const stats = await worker.call<WorkerStats>({ cmd: 'waitResults', n: total, timeoutMs: p.drainMs });
  const cpuShare = cpu.stop(stats.results_ok);
  const res = {
    offered_rate: p.rate,
    seconds: p.seconds,
    sent,
    achieved_rate: round(sent / offeredSeconds, 1),
    created: statuses['201'] ?? 0,
    create_statuses: statuses,
    delegated: stats.delegates,
    completed: stats.results_ok,
    delegate_latency_ms: percentiles(stats.delivery_ms),
    create_response_ms: load.latency_ms,
    cpu: cpuShare,
  };
  const d = res.delegate_latency_ms;
  ctx.log(`  ${p.rate}/s${label ? ` (${label})` : ''}: delivered ${res.delegated}/${sent}; create→delegate p50 ${d.p50} p95 ${d.p95} p99 ${d.p99} ms; POST p95 ${res.create_response_ms.p95} ms`);
  return res;
}
