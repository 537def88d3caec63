/**
 * The benchmark cannot rot: `bench/run.ts --smoke` runs every scenario at tiny sizes against a
 * real server child process, and the result file must hold numeric figures for each of them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const out = mkdtempSync(path.join(os.tmpdir(), 'mcp-bench-smoke-'));

function run(): Promise<{ code: number | null; log: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', '--out', out], {
      cwd: root,
      env: { ...process.env, MCP_BENCH_PG_URL: process.env.MCP_TEST_PG_URL ?? '', MCP_BENCH_REDIS_URL: process.env.MCP_TEST_REDIS_URL ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 230_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, log }); });
  });
}

const num = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

describe('npm run bench -- --smoke', () => {
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every scenario and writes numeric figures for each', async () => {
    const { code, log } = await run();
    expect(code, log).toBe(0);
    const files = readdirSync(out).filter((f) => /^\d{4}-\d\d-\d\dT.*\.json$/.test(f));
    expect(files, log).toHaveLength(1);
    const r = JSON.parse(readFileSync(path.join(out, files[0]!), 'utf8'));
    const md = readFileSync(path.join(out, 'latest.md'), 'utf8');
    expect(md).toContain('End-to-end throughput');
    expect(md).toContain('| Create → `task:delegate` p99 at 500 tasks/s | < 25 ms | not measured |'); // the goals table; a smoke run measures none
    expect(r.mode).toBe('smoke');
    const s = r.scenarios;
    for (const name of ['throughput', 'bullmq', 'latency', 'rest', 'sockets', 'pipelines']) {
      expect(s[name], name).toBeDefined();
      expect(s[name].error, `${name}: ${s[name].error}`).toBeUndefined();
    }

    // 1. every task created was completed, at a measured rate
    expect(s.throughput.runs.length).toBeGreaterThanOrEqual(1);
    for (const t of s.throughput.runs) {
      expect(t.completed).toBe(t.n);
      expect(num(t.tasks_per_s) && t.tasks_per_s > 0).toBe(true);
      // where the CPU went, read from /proc (10 ms ticks: the smoke run's agents may round to 0): the server worked, the parts add up
      const u = t.cpu.us_per_task;
      expect(u.server).toBeGreaterThan(0);
      expect(num(u.agents) && u.agents >= 0).toBe(true);
      expect(Math.abs(u.total - (u.server + u.postgres + u.redis + u.agents + u.load_generator))).toBeLessThanOrEqual(5);
      expect(t.cpu.cores.server).toBeGreaterThan(0);
    }
    expect(md).toContain('CPU µs per task');
    // 2. BullMQ on the same Redis (skipped only where Redis is unreachable)
    if (process.env.MCP_TEST_REDIS_URL) {
      for (const b of s.bullmq.runs) {
        expect(b.completed).toBe(b.n);
        expect(num(b.jobs_per_s) && b.jobs_per_s > 0).toBe(true);
        expect(num(b.cpu.us_per_task.total) && b.cpu.us_per_task.total > 0).toBe(true);
        expect(b.cpu.us_per_task.server).toBe(0); // no server of ours in BullMQ's figure
      }
      expect(num(s.bullmq.ratios[0].ratio)).toBe(true);
    } else expect(s.bullmq.skipped).toMatch(/Redis/);
    // the host readings the report prints next to the machine
    const cal = r.machine.calibration;
    for (const k of ['loopback_rtt_us', 'loopback_cpu_us_per_rtt', 'work_us_back_to_back', 'work_us_after_idle']) expect(num(cal[k]) && cal[k] > 0, k).toBe(true);
    expect(cal.idle_penalty).toBeCloseTo(cal.work_us_after_idle / cal.work_us_back_to_back, 1);
    expect(md).toContain('loopback TCP round trip');
    // 3. every task sent was delegated (the unmeasured warm-up phase too); latency percentiles ordered
    expect(s.latency.warmup.delegated).toBe(s.latency.warmup.sent);
    expect(s.latency.warmup.sent).toBeGreaterThan(0);
    expect(md).toContain('a warm-up phase (not in the table)');
    for (const x of s.latency.runs) {
      const d = x.delegate_latency_ms;
      expect(x.delegated).toBe(x.sent);
      expect(d.count).toBe(x.sent);
      for (const k of ['p50', 'p95', 'p99']) expect(num(d[k]) && d[k] >= 0, k).toBe(true);
      expect(d.p50 <= d.p95 && d.p95 <= d.p99).toBe(true);
      expect(x.cpu.us_per_task.server).toBeGreaterThan(0);
    }
    // 4. three routes, closed loop and at a fixed offered rate, all 2xx, with percentiles
    expect(s.rest.routes).toHaveLength(6);
    expect(s.rest.routes.map((x: { offered_per_s: number | null }) => x.offered_per_s)).toEqual([null, 100, null, 100, null, 100]);
    for (const x of s.rest.routes) {
      expect(x.requests, x.route).toBeGreaterThan(0);
      expect(x.non_2xx, x.route).toBe(0);
      expect(num(x.latency_ms.p95) && num(x.latency_ms.p99), x.route).toBe(true);
    }
    // 5. both levels connected, heartbeats acked, RSS read from /proc
    expect(s.sockets.levels).toHaveLength(2);
    for (const l of s.sockets.levels) {
      expect(l.connected).toBe(l.target);
      expect(l.heartbeats_acked).toBeGreaterThan(0);
      expect(l.heartbeats_acked).toBe(l.heartbeats_sent);
      expect(num(l.server_rss_mb_connected) && l.server_rss_mb_connected > 0).toBe(true);
      expect(num(l.heartbeat_ack_ms.p99)).toBe(true);
    }
    // 6. pipeline runs completed, with latency and rate
    for (const l of s.pipelines.levels) {
      expect(l.statuses.completed, JSON.stringify(l.statuses)).toBe(l.runs);
      expect(num(l.runs_per_s) && l.runs_per_s > 0).toBe(true);
      expect(num(l.latency_ms.p50) && num(l.latency_ms.p95)).toBe(true);
    }
    // 7. two processes (only with PostgreSQL and Redis): all completed, every create delegated across processes
    if (process.env.MCP_TEST_PG_URL && process.env.MCP_TEST_REDIS_URL) {
      const mp = s.multiprocess;
      expect(mp.error, mp.error).toBeUndefined();
      expect(mp.throughput.completed).toBe(mp.throughput.n);
      expect(mp.warmup.delegated).toBe(mp.warmup.sent);
      for (const x of mp.latency) {
        expect(x.delegated).toBe(x.sent);
        expect(num(x.delegate_latency_ms.p99)).toBe(true);
      }
    } else expect(s.multiprocess.skipped).toMatch(/PostgreSQL and Redis/);
    // 8. a backlog nobody serves: creates before and with it, each kind timed, the queued ones placed behind it
    const bl = s.backlog;
    expect(bl.error, bl.error).toBeUndefined();
    expect(bl.phases.map((ph: { waiting: number }) => ph.waiting)).toEqual([0, bl.backlog + 10]);
    for (const ph of bl.phases) {
      expect(num(ph.runs_now.response_ms.p95) && num(ph.joins_backlog.response_ms.p95)).toBe(true);
      expect(ph.runs_now.last_queue_position).toBe(0); // leased at insert
    }
    // Behind the backlog and the earlier queued creates (and whatever other scenarios of the shared smoke server left waiting).
    expect(bl.phases[1].joins_backlog.last_queue_position).toBeGreaterThanOrEqual(bl.backlog + 20);
    expect(md).toContain('## 8. A backlog nobody serves');
  }, 240_000);
});
