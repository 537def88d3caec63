/**
 * `npm run bench` (issue 7): starts what it needs on loopback — the server as a child process
 * (PGlite in a temp dir, or a fresh PostgreSQL schema, + Redis when reachable), agents in a
 * separate process — runs the scenarios, writes bench/results/<ISO date>.json and
 * bench/results/latest.md, and prints the table.
 *
 *   npm run bench                      full run (~10 min on 2 cores)
 *   npm run bench -- --smoke           tiny sizes, every scenario, < 60 s
 *   npm run bench -- --only latency    one scenario (comma-separated list allowed):
 *                                      throughput, bullmq, latency, rest, sockets, pipelines, multiprocess, backlog
 *   npm run bench -- --engine pglite   store for scenarios 3–6 (default: postgres when reachable), and the
 *                                      only store of scenario 1 (default: both)
 *   npm run bench -- --profile         V8 CPU profiles of each server child in <out>/profiles
 *   npm run bench -- --out DIR         where to write results (default bench/results)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { BenchContext, ScenarioResult } from './lib/context.ts';
import { REPO_ROOT, startServer, type ServerHandle } from './lib/server-process.ts';
import { calibrate } from './lib/calibrate.ts';
import { renderMarkdown } from './lib/report.ts';
import { round } from './lib/stats.ts';
import { runThroughput, throughputParams } from './scenarios/throughput.ts';
import { runBullmq } from './scenarios/bullmq.ts';
import { latencyParams, runLatency } from './scenarios/latency.ts';
import { multiprocessParams, runMultiprocess } from './scenarios/multiprocess.ts';
import { restParams, runRest } from './scenarios/rest.ts';
import { runSockets, socketParams } from './scenarios/sockets.ts';
import { pipelineParams, runPipelines } from './scenarios/pipelines.ts';
import { backlogParams, runBacklog } from './scenarios/backlog.ts';

export const SCENARIOS = ['throughput', 'bullmq', 'latency', 'rest', 'sockets', 'pipelines', 'multiprocess', 'backlog'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Args { smoke: boolean; only: Scenario[]; out: string; profile: boolean; engine: 'pglite' | 'postgres' | '' }

function parseArgs(argv: string[]): Args {
  const a: Args = { smoke: false, only: [...SCENARIOS], out: path.join(REPO_ROOT, 'bench/results'), profile: false, engine: '' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      const v = argv[++i];
      if (!v) throw new Error(`${k} needs a value`);
      return v;
    };
    if (k === '--smoke') a.smoke = true;
    else if (k === '--profile') a.profile = true;
    else if (k === '--out') a.out = path.resolve(val());
    else if (k === '--engine') {
      const e = val();
      if (e !== 'pglite' && e !== 'postgres') throw new Error('--engine is pglite or postgres');
      a.engine = e;
    } else if (k === '--only') {
      const list = val().split(',').map((s) => s.trim()).filter(Boolean);
      const bad = list.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
      if (bad.length) throw new Error(`unknown scenario(s) ${bad.join(', ')}; known: ${SCENARIOS.join(', ')}`);
      a.only = list as Scenario[];
    } else if (k === '--help' || k === '-h') {
      process.stdout.write(`usage: npm run bench -- [--smoke] [--only ${SCENARIOS.join('|')}[,…]] [--engine pglite|postgres] [--profile] [--out DIR]\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

async function pgReachable(url: string): Promise<boolean> {
  if (!url) return false;
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

async function redisReachable(url: string): Promise<boolean> {
  if (!url) return false;
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function guarded(name: string, ctx: BenchContext, fn: () => Promise<ScenarioResult>): Promise<ScenarioResult> {
  const t0 = performance.now();
  try {
    const r = await fn();
    return { ...r, scenario_seconds: round((performance.now() - t0) / 1000, 1) };
  } catch (err) {
    ctx.log(`${name} FAILED: ${(err as Error).stack ?? String(err)}`);
    return { error: (err as Error).message, scenario_seconds: round((performance.now() - t0) / 1000, 1) };
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const log = (m: string) => process.stderr.write(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1).padStart(6)} s] ${m}\n`);
  const pgCandidate = process.env.MCP_BENCH_PG_URL ?? process.env.MCP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redisCandidate = process.env.MCP_BENCH_REDIS_URL ?? process.env.MCP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const pgUrl = (await pgReachable(pgCandidate)) ? pgCandidate : '';
  const redisUrl = (await redisReachable(redisCandidate)) ? redisCandidate : '';
  if (args.engine === 'postgres' && !pgUrl) throw new Error(`--engine postgres but PostgreSQL is not reachable at ${pgCandidate}`);
  const useDefaultPg = args.engine === 'postgres' || (args.engine === '' && !!pgUrl);
  const cpuProfDir = args.profile ? path.join(args.out, 'profiles') : '';
  if (cpuProfDir) mkdirSync(cpuProfDir, { recursive: true });
  const shared = new Map<string, ServerHandle>();
  const ctx: BenchContext = {
    smoke: args.smoke, pgUrl, redisUrl, cpuProfDir, log,
    defaultEngine: useDefaultPg ? { engine: 'postgres', redisUrl } : { engine: 'pglite', redisUrl: '' },
    async server(o) {
      if (!args.smoke) return startServer({ ...o, pgUrl, cpuProfDir });
      const key = `${o.engine}|${o.redisUrl}`;
      let s = shared.get(key);
      if (!s) {
        s = await startServer({ ...o, builtinAgents: true, label: 'smoke', pgUrl, cpuProfDir });
        shared.set(key, s);
      }
      return { ...s, stop: async () => {} };
    },
  };
  const calibration = await calibrate();
  log(`host: loopback round trip ${calibration.loopback_rtt_us} µs; work after 10 ms idle ×${calibration.idle_penalty} slower`);
  log(`mode ${args.smoke ? 'smoke' : 'full'}; PostgreSQL ${pgUrl ? 'reachable' : 'not reachable'}; Redis ${redisUrl ? 'reachable' : 'not reachable'}; scenarios ${args.only.join(', ')}`);

  const scenarios: Partial<Record<Scenario, ScenarioResult>> = {};
  const want = (s: Scenario) => args.only.includes(s);
  const tp = throughputParams(args.smoke);

  if (want('throughput')) {
    scenarios.throughput = await guarded('throughput', ctx, async () => {
      // Full runs: PGlite + in-process, and PostgreSQL + Redis when reachable. Smoke: the default store only.
      // `--engine` limits the scenario to that store.
      const stores: Array<{ engine: 'pglite' | 'postgres'; redisUrl: string }> = args.smoke ? [ctx.defaultEngine] : [];
      if (!args.smoke && args.engine !== 'postgres') stores.push({ engine: 'pglite', redisUrl: '' });
      if (pgUrl && !args.smoke && args.engine !== 'pglite') stores.push({ engine: 'postgres', redisUrl });
      const runs: ScenarioResult[] = [];
      for (const s of stores) runs.push(await guarded(`throughput ${s.engine}`, ctx, () => runThroughput(ctx, s, tp)));
      if (runs.every((r) => r.error)) throw new Error(String(runs[0]!.error));
      return { runs, ...(pgUrl ? {} : { note: 'PostgreSQL not reachable: PGlite only' }) };
    });
  }
  if (want('bullmq')) {
    scenarios.bullmq = redisUrl
      ? await guarded('bullmq', ctx, async () => {
        const runs = [];
        for (const c of [tp.agents, tp.agents * tp.perAgent]) runs.push(await runBullmq(ctx, tp.n, c, tp.timeoutMs));
        const best = runs.reduce((a, b) => (b.jobs_per_s > a.jobs_per_s ? b : a));
        const ours = (scenarios.throughput?.runs as Array<{ store: string; tasks_per_s?: number }> | undefined) ?? [];
        const ratios = ours.filter((o) => typeof o.tasks_per_s === 'number').map((o) => ({
          store: o.store, ours_tasks_per_s: o.tasks_per_s!, bullmq_jobs_per_s: best.jobs_per_s, bullmq_concurrency: best.concurrency, ratio: round(o.tasks_per_s! / best.jobs_per_s, 3),
        }));
        return { runs, ratios };
      })
      : { skipped: 'Redis not reachable' };
  }
  if (want('latency')) scenarios.latency = await guarded('latency', ctx, () => runLatency(ctx, latencyParams(args.smoke)));
  if (want('rest')) scenarios.rest = await guarded('rest', ctx, () => runRest(ctx, restParams(args.smoke)));
  if (want('sockets')) scenarios.sockets = await guarded('sockets', ctx, () => runSockets(ctx, socketParams(args.smoke)));
  if (want('pipelines')) scenarios.pipelines = await guarded('pipelines', ctx, () => runPipelines(ctx, pipelineParams(args.smoke)));
  if (want('multiprocess')) scenarios.multiprocess = await guarded('multiprocess', ctx, () => runMultiprocess(ctx, multiprocessParams(args.smoke)));
  if (want('backlog')) scenarios.backlog = await guarded('backlog', ctx, () => runBacklog(ctx, backlogParams(args.smoke)));

  for (const s of shared.values()) await s.stop();
  const finishedAt = new Date();
  const cpus = os.cpus();
  const result = {
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    duration_s: round((finishedAt.getTime() - startedAt.getTime()) / 1000, 1),
    mode: args.smoke ? 'smoke' : 'full',
    git_commit: gitCommit(),
    machine: { load_avg_start: loadStart, load_avg_end: os.loadavg().map((x) => round(x, 2)), cpus: cpus.length, cpu_model: cpus[0]?.model ?? 'unknown', memory_gb: round(os.totalmem() / 2 ** 30, 1), node: process.version, platform: `${os.platform()} ${os.release()}`, calibration },
    services: { postgres: !!pgUrl, redis: !!redisUrl, default_store: ctx.defaultEngine.engine },
    scenarios,
  };
  mkdirSync(args.out, { recursive: true });
  const file = path.join(args.out, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  const md = renderMarkdown(result);
  writeFileSync(path.join(args.out, 'latest.md'), `${md}\n`);
  process.stdout.write(`${md}\n`);
  log(`wrote ${path.relative(process.cwd(), file)} and latest.md in ${result.duration_s} s`);
  const failed = Object.entries(scenarios).filter(([, v]) => v && 'error' in v).map(([k]) => k);
  if (failed.length) {
    log(`failed scenarios: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
