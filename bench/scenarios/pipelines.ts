/**
 * Scenario 6, pipelines: 6-stage `techdeck` runs over the 50-turn transcript with the built-in
 * agents, at 1, 10 and 50 concurrent runs (closed loop: each of C clients starts a run, polls
 * GET /api/v1/pipelines/{id} until it is finished, and starts the next). Latency is the server's
 * own created_at → completed_at; the client-observed figure (POST → seen finished) is reported
 * too. runs/s = finished runs / wall time of the level.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { engineLabel, type BenchContext } from '../lib/context.ts';
import { REPO_ROOT, withServerLog } from '../lib/server-process.ts';
import type { Api } from '../lib/http.ts';
import { percentiles, round, sleep } from '../lib/stats.ts';

export interface PipelineParams { levels: Array<{ concurrency: number; runs: number }>; maxSecondsPerLevel: number; pollMs: number }

export function pipelineParams(smoke: boolean): PipelineParams {
  return smoke
    ? { levels: [{ concurrency: 1, runs: 1 }, { concurrency: 2, runs: 2 }], maxSecondsPerLevel: 20, pollMs: 100 }
    : { levels: [{ concurrency: 1, runs: 5 }, { concurrency: 10, runs: 30 }, { concurrency: 50, runs: 100 }], maxSecondsPerLevel: 90, pollMs: 100 };
}

const FINAL = new Set(['completed', 'partially_completed', 'failed', 'cancelled']);

interface PipelineView { pipeline_id: string; status: string; created_at: string; completed_at: string | null }

async function oneRun(api: Api, content: string, pollMs: number, deadline: number): Promise<{ status: string; server_ms: number; client_ms: number }> {
  const t0 = performance.now();
  const created = await api.expect<{ pipeline_id: string }>(201, 'POST', '/api/v1/pipelines', { template: 'techdeck', input_data: { format: 'text', content } });
  for (;;) {
    const v = await api.expect<PipelineView>(200, 'GET', `/api/v1/pipelines/${created.pipeline_id}`);
    if (FINAL.has(v.status)) {
      const serverMs = v.completed_at ? Date.parse(v.completed_at) - Date.parse(v.created_at) : Number.NaN;
      return { status: v.status, server_ms: serverMs, client_ms: performance.now() - t0 };
    }
    if (Date.now() > deadline) return { status: 'unfinished', server_ms: Number.NaN, client_ms: performance.now() - t0 };
    await sleep(pollMs);
  }
}

export async function runPipelines(ctx: BenchContext, p: PipelineParams) {
  const store = ctx.defaultEngine;
  const content = readFileSync(path.join(REPO_ROOT, 'test/fixtures/transcripts/session-50-turns.txt'), 'utf8');
  ctx.log(`pipelines on ${engineLabel(store)} with built-in agents: levels ${p.levels.map((l) => l.concurrency).join(', ')}`);
  const server = await ctx.server({ ...store, builtinAgents: true, label: 'pipelines' });
  try {
    await oneRun(server.api, content, p.pollMs, Date.now() + 60_000); // warm-up (lexicons, JIT)
    const levels = [];
    for (const level of p.levels) {
      const deadline = Date.now() + p.maxSecondsPerLevel * 1000;
      const runs: Array<{ status: string; server_ms: number; client_ms: number }> = [];
      let launched = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: level.concurrency }, async () => {
        while (launched < level.runs && Date.now() < deadline) {
          launched++;
          runs.push(await oneRun(server.api, content, p.pollMs, deadline));
        }
      }));
      const seconds = (performance.now() - t0) / 1000;
      const done = runs.filter((r) => r.status !== 'unfinished');
      const statuses: Record<string, number> = {};
      for (const r of runs) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      const out = {
        concurrency: level.concurrency,
        runs: runs.length,
        statuses,
        seconds: round(seconds, 2),
        runs_per_s: round(done.length / seconds, 2),
        latency_ms: percentiles(done.map((r) => r.server_ms), 0),
        client_latency_ms: percentiles(done.map((r) => r.client_ms), 0),
      };
      ctx.log(`  C=${level.concurrency}: ${runs.length} runs ${JSON.stringify(statuses)} in ${out.seconds} s → ${out.runs_per_s} runs/s, p50 ${out.latency_ms.p50} p95 ${out.latency_ms.p95} ms`);
      levels.push(out);
    }
    return { store: engineLabel(store), template: 'techdeck', transcript: 'session-50-turns.txt', levels, server_rss_mb: round(server.rssKb() / 1024, 1) };
  } catch (err) {
    throw withServerLog(err, server);
  } finally {
    await server.stop();
  }
}
