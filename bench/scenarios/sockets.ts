/**
 * Scenario 5, concurrent agents: registered identities (bulk, over the real route), then 1,000
 * and 10,000 connected sockets (websocket transport; up to 10 sockets per agent identity, the
 * per-principal limit), each heartbeating every few seconds with an ack. Reports the server's
 * RSS (VmRSS of the child) before, connected, and at peak during heartbeats, and the heartbeat
 * ack latency.
 */
import { AgentsWorker } from '../lib/agents-client.ts';
import type { ConnectResult, HeartbeatResult } from '../agents-worker.ts';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { registerAgents, withServerLog } from '../lib/server-process.ts';
import { round, sleep } from '../lib/stats.ts';

export interface SocketParams { identities: number; levels: number[]; intervalMs: number; durationMs: number }

export function socketParams(smoke: boolean): SocketParams {
  return smoke
    ? { identities: 20, levels: [20, 100], intervalMs: 1000, durationMs: 2000 }
    : { identities: 1000, levels: [1000, 10_000], intervalMs: 5000, durationMs: 20_000 };
}

export async function runSockets(ctx: BenchContext, p: SocketParams) {
  const store = ctx.defaultEngine;
  ctx.log(`sockets on ${engineLabel(store)}: ${p.identities} identities, levels ${p.levels.join(', ')}, heartbeat every ${p.intervalMs} ms`);
  const server = await ctx.server({ ...store, builtinAgents: false, label: 'sockets' });
  const worker = await AgentsWorker.start();
  try {
    const regStart = performance.now();
    const agents = await registerAgents(server.api, p.identities, { capabilities: ['noop'], max_concurrent_tasks: 5, prefix: 'sock' }, 16);
    const registerSeconds = (performance.now() - regStart) / 1000;
    ctx.log(`  registered ${agents.length} agents in ${round(registerSeconds, 1)} s`);
    const levels = [];
    let connected = 0;
    let perAgentSoFar = 0;
    for (const target of p.levels) {
      const perAgent = Math.ceil(target / p.identities);
      if (perAgent > 10) throw new Error(`${target} sockets need more than 10 per identity; raise identities`);
      const rssBefore = server.rssKb();
      const add = perAgent - perAgentSoFar;
      const t0 = performance.now();
      const conn = await worker.call<ConnectResult>({ cmd: 'connect', url: server.wsUrl, agents, socketsPerAgent: add, concurrency: 100, timeoutMs: 60_000 });
      const connectSeconds = (performance.now() - t0) / 1000;
      perAgentSoFar = perAgent;
      connected += conn.connected;
      await sleep(ctx.smoke ? 200 : 1000);
      const rssConnected = server.rssKb();
      let peak = rssConnected;
      const sampler = setInterval(() => { peak = Math.max(peak, server.rssKb()); }, 250);
      const hb = await worker.call<HeartbeatResult>({ cmd: 'heartbeat', intervalMs: p.intervalMs, durationMs: p.durationMs }).finally(() => clearInterval(sampler));
      const level = {
        target,
        sockets_per_identity: perAgent,
        connected,
        connect_failed: conn.failed,
        connect_errors: conn.errors,
        connect_seconds: round(connectSeconds, 2),
        connects_per_s: round(conn.connected / connectSeconds, 1),
        server_rss_mb_before: round(rssBefore / 1024, 1),
        server_rss_mb_connected: round(rssConnected / 1024, 1),
        server_rss_mb_peak: round(peak / 1024, 1),
        rss_kb_per_socket: round((rssConnected - rssBefore) / Math.max(1, conn.connected), 1),
        heartbeat_interval_s: p.intervalMs / 1000,
        heartbeats_sent: hb.sent,
        heartbeats_acked: hb.acked,
        heartbeat_errors: hb.errors,
        heartbeat_ack_ms: hb.ack_ms,
        worker_rss_mb: round(worker.rssKb() / 1024, 1),
      };
      ctx.log(`  ${connected} sockets (${round(connectSeconds, 1)} s to connect): RSS ${level.server_rss_mb_connected} MB (peak ${level.server_rss_mb_peak}), heartbeat ack p50 ${hb.ack_ms.p50} p99 ${hb.ack_ms.p99} ms, ${hb.acked}/${hb.sent} acked`);
      levels.push(level);
    }
    await worker.call({ cmd: 'disconnect' });
    return { store: engineLabel(store), identities: agents.length, register_seconds: round(registerSeconds, 2), levels };
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await worker.stop();
    await server.stop();
  }
}
