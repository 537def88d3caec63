/**
 * Issue 5's figures: two server processes on one PostgreSQL schema + Redis (distinct key prefix),
 * agents connected to process B, tasks created through process A. Reports end-to-end tasks/s
 * across processes (compare with scenario 1's single process on PostgreSQL + Redis) and
 * create→`task:delegate` latency across processes at a fixed offered rate.
 */
import { randomBytes } from 'node:crypto';
import { AgentsWorker } from '../lib/agents-client.ts';
import type { ConnectResult, WorkerStats } from '../agents-worker.ts';
import type { BenchContext } from '../lib/context.ts';
import { registerAgents, startServer, withServerLog, type ServerHandle } from '../lib/server-process.ts';
import { ProcessCpu } from '../lib/process-cpu.ts';
import { round, sleep, wallMs } from '../lib/stats.ts';
import { createPgSchema, dropPgSchema, pgUrlWithSchema } from '../../test/helpers/stores.ts';
import { warmedPhases, type LatencyParams } from './latency.ts';

/** Scenario 3's parameters (its phases run through A) plus scenario 1's batch size. */
export interface MultiprocessParams extends LatencyParams { n: number }

export function multiprocessParams(smoke: boolean): MultiprocessParams {
  // The same sizes and rates as scenarios 1 and 3, so one process and two compare directly.
  return smoke ? { n: 200, agents: 10, perAgent: 20, rates: [20], seconds: 1, warmupSeconds: 1, drainMs: 60_000 } : { n: 20_000, agents: 50, perAgent: 20, rates: [100, 500], seconds: 10, warmupSeconds: 5, drainMs: 180_000 };
}

export async function runMultiprocess(ctx: BenchContext, p: MultiprocessParams) {
  if (!ctx.pgUrl || !ctx.redisUrl) return { skipped: 'needs PostgreSQL and Redis' };
  ctx.log(`multi-process on PostgreSQL + Redis: 2 servers, ${p.agents} agents on B, tasks created on A`);
  const schema = await createPgSchema(ctx.pgUrl);
  const env = {
    DATABASE_URL: pgUrlWithSchema(ctx.pgUrl, schema),
    MCP_MASTER_KEY: randomBytes(32).toString('base64'),
    MCP_PASSWORD_PEPPER: randomBytes(16).toString('hex'),
    MCP_REDIS_PREFIX: `bench-${Date.now().toString(36)}:`,
    MCP_DB_POOL_SIZE: '20',
  };
  const servers: ServerHandle[] = [];
  const worker = await AgentsWorker.start();
  try {
    // The store is created by `env`, so the engine flag only picks the temp-dir cleanup.
    const a = await startServer({ engine: 'pglite', redisUrl: ctx.redisUrl, pgUrl: ctx.pgUrl, builtinAgents: false, env, label: 'multi-a', cpuProfDir: ctx.cpuProfDir });
    servers.push(a);
    const b = await startServer({ engine: 'pglite', redisUrl: ctx.redisUrl, pgUrl: ctx.pgUrl, builtinAgents: false, env, label: 'multi-b', cpuProfDir: ctx.cpuProfDir });
    servers.push(b);
    const agents = await registerAgents(a.api, p.agents, { capabilities: ['noop'], max_concurrent_tasks: p.perAgent, prefix: 'mp' });
    const conn = await worker.call<ConnectResult>({ cmd: 'connect', url: b.wsUrl, agents, socketsPerAgent: 1, concurrency: 50, timeoutMs: 30_000 });
    if (conn.connected !== p.agents) throw new Error(`only ${conn.connected}/${p.agents} agents connected to B`);

    // Throughput: batches through A, results on B.
    await worker.call({ cmd: 'reset' });
    const cpu = ProcessCpu.start({ server: [a.pid, b.pid], agents: [worker.pid] });
    const t0 = wallMs();
    for (let off = 0; off < p.n; off += 1000) {
      const size = Math.min(1000, p.n - off);
      await a.api.expect(201, 'POST', '/api/v1/tasks/batch', { tasks: Array.from({ length: size }, () => ({ task_type: 'noop', required_capabilities: ['noop'] })) });
    }
    const stats = await worker.call<WorkerStats>({ cmd: 'waitResults', n: p.n, timeoutMs: p.drainMs });
    const seconds = ((stats.last_result_at ?? wallMs()) - t0) / 1000;
    const completed = (await a.api.expect<{ pagination: { total: number } }>(200, 'GET', '/api/v1/tasks?status=completed&limit=1')).pagination.total;
    const throughput = { n: p.n, completed, seconds: round(seconds, 3), tasks_per_s: round(completed / seconds, 1), cpu: cpu.stop(completed) };
    ctx.log(`  2 processes: ${completed}/${p.n} completed in ${throughput.seconds} s → ${throughput.tasks_per_s} tasks/s`);
    await sleep(200);

    // Latency across processes: single creates on A at a fixed rate, delivered by B.
    const { warmup, runs: latency } = await warmedPhases(ctx, a, worker, p, [a.pid, b.pid]);
    return { store: 'PostgreSQL + Redis, 2 processes', agents: p.agents, throughput, warmup, latency };
  } catch (err) {
    throw withServerLog(err, servers[servers.length - 1] ?? { output: () => '' });
  } finally {
    await worker.stop();
    for (const s of servers) await s.stop();
    await dropPgSchema(ctx.pgUrl, schema).catch(() => {});
  }
}
