/**
 * Scenario 2, the reference: the same N no-op jobs through BullMQ on the same Redis, in the same
 * run — Queue.addBulk (1000 per call) from this process, a Worker returning immediately in the
 * agents worker process. Measured from the first addBulk to the last `completed` event.
 * Run at concurrency K (the number of agents) and K × per-agent concurrency (the same number of
 * tasks in flight our agents allow).
 */
import { Queue } from 'bullmq';
import { AgentsWorker } from '../lib/agents-client.ts';
import type { BullResult } from '../agents-worker.ts';
import type { BenchContext } from '../lib/context.ts';
import { ProcessCpu } from '../lib/process-cpu.ts';
import { round, wallMs } from '../lib/stats.ts';

export async function runBullmq(ctx: BenchContext, n: number, concurrency: number, timeoutMs: number) {
  ctx.log(`bullmq: ${n} jobs, concurrency ${concurrency}`);
  const u = new URL(ctx.redisUrl);
  const connection = { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0), maxRetriesPerRequest: null };
  const name = `mcp-bench-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const queue = new Queue(name, { connection });
  const worker = await AgentsWorker.start();
  try {
    await queue.waitUntilReady();
    const ready = worker.once('bullmq-ready', 30_000);
    const done = worker.call<BullResult>({ cmd: 'bullmq', redisUrl: ctx.redisUrl, queue: name, n, concurrency, timeoutMs });
    await ready;
    const cpu = ProcessCpu.start({ server: [], agents: [worker.pid] });
    const t0 = wallMs();
    for (let off = 0; off < n; off += 1000) {
      const size = Math.min(1000, n - off);
      await queue.addBulk(Array.from({ length: size }, (_, i) => ({ name: 'noop', data: { i: off + i } })));
    }
    const addedAt = wallMs();
    const r = await done;
    const end = r.last_at ?? wallMs();
    const cpuShare = cpu.stop(r.completed);
    const seconds = (end - t0) / 1000;
    const res = {
      n, concurrency, completed: r.completed, all_completed: r.completed >= n,
      add_seconds: round((addedAt - t0) / 1000, 3),
      seconds: round(seconds, 3),
      jobs_per_s: round(r.completed / seconds, 1),
      cpu: cpuShare,
    };
    ctx.log(`  ${res.completed}/${n} in ${res.seconds} s → ${res.jobs_per_s} jobs/s`);
    return res;
  } finally {
    await worker.stop();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
  }
}
