/**
 * Scenario 1, end-to-end throughput: N no-op tasks batch-created over HTTP (≤1000 per batch),
 * delegated over Socket.IO to K agents that answer at once, results recorded. Measured from the
 * first batch POST to the last acknowledged `task:result`; the completed count is then checked
 * against GET /api/v1/tasks?status=completed.
 */
import { AgentsWorker } from '../lib/agents-client.ts';
import type { ConnectResult, WorkerStats } from '../agents-worker.ts';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { registerAgents, withServerLog, type ServerOptions } from '../lib/server-process.ts';
import { ProcessCpu } from '../lib/process-cpu.ts';
import { round, sleep, wallMs } from '../lib/stats.ts';

export interface ThroughputParams { n: number; agents: number; perAgent: number; timeoutMs: number }

export function throughputParams(smoke: boolean): ThroughputParams {
  return smoke ? { n: 200, agents: 10, perAgent: 20, timeoutMs: 30_000 } : { n: 20_000, agents: 50, perAgent: 20, timeoutMs: 180_000 };
}

export async function runThroughput(ctx: BenchContext, store: Pick<ServerOptions, 'engine' | 'redisUrl'>, p: ThroughputParams) {
  const label = engineLabel(store);
  ctx.log(`throughput on ${label}: ${p.n} tasks, ${p.agents} agents × ${p.perAgent}`);
  const server = await ctx.server({ ...store, builtinAgents: false, label: `throughput-${store.engine}` });
  const worker = await AgentsWorker.start();
  try {
    const agents = await registerAgents(server.api, p.agents, { capabilities: ['noop'], max_concurrent_tasks: p.perAgent, prefix: 'tp' });
    const conn = await worker.call<ConnectResult>({ cmd: 'connect', url: server.wsUrl, agents, socketsPerAgent: 1, concurrency: 50, timeoutMs: 30_000 });
    if (conn.connected !== p.agents) throw new Error(`only ${conn.connected}/${p.agents} agents connected: ${JSON.stringify(conn.errors)}`);

    const countCompleted = async () => (await server.api.expect<{ pagination: { total: number } }>(200, 'GET', '/api/v1/tasks?status=completed&limit=1')).pagination.total;
    const before = await countCompleted();
    const cpu = ProcessCpu.start({ server: [server.pid], agents: [worker.pid] });
    const t0 = wallMs();
    const createRetries: Record<string, number> = {};
    const batch = 1000;
    for (let off = 0; off < p.n; off += batch) {
      const size = Math.min(batch, p.n - off);
      const tasks = Array.from({ length: size }, () => ({ task_type: 'noop', required_capabilities: ['noop'] }));
      // A 5xx is retried like a client would (same Idempotency-Key, so never created twice) and counted.
      const key = `tp-${t0}-${off}`;
      for (let attempt = 1; ; attempt++) {
        const r = await server.api.call('POST', '/api/v1/tasks/batch', { tasks }, { 'idempotency-key': key });
        if (r.status === 201) break;
        if (r.status < 500 || attempt >= 10) throw new Error(`POST /api/v1/tasks/batch → ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
        createRetries[r.status] = (createRetries[r.status] ?? 0) + 1;
        await sleep(500 * attempt);
      }
    }
    const createdAt = wallMs();
    const stats = await worker.call<WorkerStats>({ cmd: 'waitResults', n: p.n, timeoutMs: p.timeoutMs });
    const end = stats.last_result_at ?? wallMs();
    const cpuShare = cpu.stop(stats.results_ok);
    const completed = (await countCompleted()) - before;
    const seconds = (end - t0) / 1000;
    const res = {
      store: label,
      n: p.n,
      agents: p.agents,
      max_concurrent_per_agent: p.perAgent,
      completed,
      results_acked: stats.results_ok,
      result_errors: stats.result_errors,
      result_retries: stats.result_retries,
      create_retries: createRetries,
      all_completed: completed === p.n,
      create_seconds: round((createdAt - t0) / 1000, 3),
      create_per_s: round(p.n / ((createdAt - t0) / 1000), 1),
      seconds: round(seconds, 3),
      tasks_per_s: round(completed / seconds, 1),
      server_rss_mb: round(server.rssKb() / 1024, 1),
      server_start_s: round(server.startSeconds, 1),
      cpu: cpuShare,
    };
    ctx.log(`  ${res.completed}/${p.n} completed in ${res.seconds} s → ${res.tasks_per_s} tasks/s (create ${res.create_per_s}/s)`);
    return res;
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await worker.stop();
    await server.stop();
  }
}
