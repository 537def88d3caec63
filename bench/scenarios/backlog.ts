/**
 * Scenario 8, a backlog nobody serves: `backlog` tasks wait for a capability no connected agent
 * has (its agents are down) while one agent with another capability stays connected. One create
 * at a time (closed loop, `n` of each kind), before the backlog and again with it in place:
 * - creates the connected agent can run at once (leased at insert, then delivered and completed);
 * - creates that join the backlog (their `queue_position` past the exact limit is estimated).
 * The response times should not grow with the backlog: neither kind reads the waiting tasks.
 */
import { AgentsWorker } from '../lib/agents-client.ts';
import type { ConnectResult } from '../agents-worker.ts';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { registerAgents, withServerLog, type ServerHandle } from '../lib/server-process.ts';
import { percentiles, round, sleep } from '../lib/stats.ts';

export interface BacklogParams { backlog: number; n: number }

export function backlogParams(smoke: boolean): BacklogParams {
  return smoke ? { backlog: 500, n: 10 } : { backlog: 50_000, n: 300 };
}

const RUNS_NOW = { task_type: 'noop', required_capabilities: ['noop'] };
const WAITS = { task_type: 'backlog', required_capabilities: ['bench_backlog'] };

/** `n` sequential creates of `body`: response times and the last queue position reported. */
async function creates(server: ServerHandle, body: object, n: number) {
  const ms: number[] = [];
  let position = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    position = (await server.api.expect<{ queue_position: number }>(201, 'POST', '/api/v1/tasks', body)).queue_position;
    ms.push(performance.now() - t0);
  }
  return { n, response_ms: percentiles(ms), last_queue_position: position };
}

export async function runBacklog(ctx: BenchContext, p: BacklogParams) {
  const store = ctx.defaultEngine;
  ctx.log(`backlog on ${engineLabel(store)}: ${p.backlog} tasks nobody serves, ${p.n} creates of each kind before and with it`);
  const server = await ctx.server({ ...store, builtinAgents: false, label: 'backlog' });
  const worker = await AgentsWorker.start();
  try {
    const agents = await registerAgents(server.api, 1, { capabilities: ['noop'], max_concurrent_tasks: 100, prefix: 'backlog' });
    const conn = await worker.call<ConnectResult>({ cmd: 'connect', url: server.wsUrl, agents, socketsPerAgent: 1, concurrency: 1, timeoutMs: 30_000 });
    if (conn.connected !== 1) throw new Error('the agent did not connect');
    const phase = async (waiting: number) => ({ waiting, runs_now: await creates(server, RUNS_NOW, p.n), joins_backlog: await creates(server, WAITS, p.n) });

    const before = await phase(0);
    const t0 = performance.now();
    for (let off = 0; off < p.backlog; off += 1000) {
      await server.api.expect(201, 'POST', '/api/v1/tasks/batch', { tasks: Array.from({ length: Math.min(1000, p.backlog - off) }, () => WAITS) });
    }
    const fillSeconds = round((performance.now() - t0) / 1000, 1);
    await sleep(3000); // the leader's maintenance pass (vacuum, analyze) where autovacuum does not run
    const after = await phase(p.n + p.backlog);
    const phases = [before, after];
    for (const ph of phases) {
      ctx.log(`  ${ph.waiting} waiting: runs now p50 ${ph.runs_now.response_ms.p50} p95 ${ph.runs_now.response_ms.p95} ms; joins p50 ${ph.joins_backlog.response_ms.p50} p95 ${ph.joins_backlog.response_ms.p95} ms (position ${ph.joins_backlog.last_queue_position})`);
    }
    return { store: engineLabel(store), backlog: p.backlog, fill_seconds: fillSeconds, phases };
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await worker.stop();
    await server.stop();
  }
}
