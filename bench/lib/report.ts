/** Renders a benchmark result file as the markdown summary (bench/results/latest.md). */

import { evaluateGoals, renderGoals } from './goals.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- renders arbitrary result JSON */
type Any = any;

const fmt = (n: unknown, digits = 1): string => (typeof n === 'number' && Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits }) : '–');

function status(s: Any): string | null {
  if (!s) return 'not run';
  if (s.skipped) return `skipped: ${s.skipped}`;
  if (s.error) return `failed: ${String(s.error).split('\n')[0]}`;
  return null;
}

/** A scenario's section: its title, then its status when it did not run cleanly, else `body`. */
function section(L: string[], title: string, data: Any, body: (d: Any) => string[]): void {
  L.push(title, '');
  const st = status(data);
  if (st) L.push(st);
  else L.push(...body(data));
  L.push('');
}

/** CPU µs per task by party (bench/lib/process-cpu.ts), or '–' for older result files and non-Linux hosts. */
function cpuText(c: Any): string {
  if (!c?.us_per_task) return '–';
  const u = c.us_per_task;
  const parts = [['server', u.server], ['PostgreSQL', u.postgres], ['Redis', u.redis], ['agents', u.agents], ['load generator', u.load_generator]].filter(([, v]) => v > 0);
  return `${fmt(u.total, 0)} (${parts.map(([k, v]) => `${k} ${fmt(v, 0)}`).join(', ')})`;
}

/** The unmeasured warm-up phase before the latency phases (absent from older result files). */
function warmupLine(w: Any): string[] {
  if (!w?.delegate_latency_ms) return [];
  const d = w.delegate_latency_ms;
  return ['', `Before these, a warm-up phase (not in the table): ${w.offered_rate}/s × ${w.seconds} s, ${w.delegated}/${w.sent} delegated, create→delegate p50 ${fmt(d.p50, 2)} / p95 ${fmt(d.p95, 2)} / p99 ${fmt(d.p99, 2)} ms.`];
}

export function renderMarkdown(r: Any): string {
  const L: string[] = [];
  const sc = r.scenarios ?? {};
  L.push(`# MCP server benchmark — ${r.started_at}${r.mode === 'smoke' ? ' (smoke: tiny sizes, not figures to quote)' : ''}`);
  L.push('');
  L.push(`Machine: ${r.machine.cpus} × ${r.machine.cpu_model}, ${r.machine.memory_gb} GiB, Node ${r.machine.node}, commit \`${r.git_commit}\`. Total ${fmt(r.duration_s, 0)} s. Reproduce: \`npm run bench\` (see docs/benchmarks.md).`);
  const cal = r.machine.calibration;
  if (cal) L.push('', `Host (bench/lib/calibrate.ts): loopback TCP round trip to another process ${fmt(cal.loopback_rtt_us)} µs (${fmt(cal.loopback_cpu_us_per_rtt)} µs of CPU on this side); the same work takes ${fmt(cal.work_us_back_to_back, 0)} µs back to back and ${fmt(cal.work_us_after_idle, 0)} µs after 10 ms idle (×${fmt(cal.idle_penalty, 2)}). Compare figures across machines with these in mind.`);
  const ls = (r.machine.load_avg_start ?? []) as number[];
  if (ls.length) L.push('', `Load average (1/5/15 min) at start ${ls.join(' / ')}, at end ${(r.machine.load_avg_end ?? []).join(' / ')}${(ls[0] ?? 0) > r.machine.cpus ? ': other work was running on this machine, so these figures are pessimistic' : ''}.`);
  L.push('');
  L.push('## Goals', '', 'What issues 7 and 5 ask this benchmark to report against (bench/lib/goals.ts); figures from the sections below.', '', ...renderGoals(evaluateGoals(r)), '');

  L.push('## 1–2. End-to-end throughput (no-op tasks) vs BullMQ');
  L.push('');
  const tp = sc.throughput;
  const tpStatus = status(tp);
  const bull = sc.bullmq;
  if (tpStatus) L.push(`Throughput: ${tpStatus}`);
  else {
    L.push('| store | tasks | agents × in-flight | completed | create /s | **tasks/s** | server RSS MB | CPU µs per task |');
    L.push('|---|---:|---:|---:|---:|---:|---:|---|');
    for (const x of tp.runs) {
      if (x.error) { L.push(`| ${x.store} | failed: ${String(x.error).split('\n')[0]} |||||||`); continue; }
      L.push(`| ${x.store} | ${fmt(x.n, 0)} | ${x.agents} × ${x.max_concurrent_per_agent} | ${fmt(x.completed, 0)} | ${fmt(x.create_per_s)} | **${fmt(x.tasks_per_s)}** | ${fmt(x.server_rss_mb)} | ${cpuText(x.cpu)} |`);
    }
  }
  L.push('');
  const bStatus = status(bull);
  if (bStatus) L.push(`BullMQ: ${bStatus}`);
  else {
    L.push('| BullMQ (same Redis) | jobs | concurrency | completed | **jobs/s** | CPU µs per job |');
    L.push('|---|---:|---:|---:|---:|---|');
    for (const x of bull.runs) L.push(`| Queue.addBulk + Worker | ${fmt(x.n, 0)} | ${x.concurrency} | ${fmt(x.completed, 0)} | **${fmt(x.jobs_per_s)}** | ${cpuText(x.cpu)} |`);
    if (bull.ratios?.length) {
      L.push('');
      for (const q of bull.ratios) L.push(`- ${q.store}: ${fmt(q.ours_tasks_per_s)} tasks/s ÷ BullMQ ${fmt(q.bullmq_jobs_per_s)} jobs/s (concurrency ${q.bullmq_concurrency}) = **${fmt(q.ratio, 3)}**`);
    }
  }
  L.push('');

  section(L, '## 3. Create → `task:delegate` latency at a fixed offered rate', sc.latency, (lat) => [
    `Store: ${lat.store}; ${lat.agents} agents.`,
    '',
    '| offered /s × s | achieved /s | sent | POST not 201 | delegated | p50 ms | p95 ms | p99 ms | max ms | POST p50 / p95 ms | CPU µs per task |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|',
    ...lat.runs.map((x: Any) => {
      const d = x.delegate_latency_ms;
      const bad = Object.entries(x.create_statuses ?? {}).filter(([k]) => k !== '201').map(([k, v]) => `${k}: ${v as number}`).join(', ') || '0';
      return `| ${x.offered_rate} × ${x.seconds} | ${fmt(x.achieved_rate)} | ${x.sent} | ${bad} | ${x.delegated} | ${fmt(d.p50, 2)} | ${fmt(d.p95, 2)} | ${fmt(d.p99, 2)} | ${fmt(d.max, 2)} | ${fmt(x.create_response_ms.p50, 2)} / ${fmt(x.create_response_ms.p95, 2)} | ${cpuText(x.cpu)} |`;
    }),
    ...warmupLine(lat.warmup),
  ]);

  section(L, '## 4. REST latency under load (autocannon)', sc.rest, (rest) => [
    `Store: ${rest.store}.`,
    '',
    '| route | load | connections | req/s | p50 ms | p95 ms | p99 ms | non-2xx |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rest.routes.map((x: Any) => `| ${x.route} | ${x.offered_per_s ? `${fmt(x.offered_per_s)}/s offered` : 'closed loop'} | ${x.connections} | ${fmt(x.rps)} | ${fmt(x.latency_ms.p50, 2)} | ${fmt(x.latency_ms.p95, 2)} | ${fmt(x.latency_ms.p99, 2)} | ${x.non_2xx} |`),
  ]);

  section(L, '## 5. Concurrent agents (sockets) and heartbeats', sc.sockets, (so) => [
    `Store: ${so.store}; ${so.identities} agent identities registered in ${fmt(so.register_seconds)} s.`,
    '',
    '| sockets | per identity | connect s | server RSS MB (before → connected, peak) | KiB/socket | heartbeat every | acked/sent | errors | ack p50 ms | ack p99 ms |',
    '|---:|---:|---:|---|---:|---:|---:|---|---:|---:|',
    ...so.levels.map((x: Any) => `| ${fmt(x.connected, 0)} | ${x.sockets_per_identity} | ${fmt(x.connect_seconds)} | ${fmt(x.server_rss_mb_before)} → ${fmt(x.server_rss_mb_connected)}, ${fmt(x.server_rss_mb_peak)} | ${fmt(x.rss_kb_per_socket)} | ${x.heartbeat_interval_s} s | ${x.heartbeats_acked}/${x.heartbeats_sent} | ${Object.entries(x.heartbeat_errors ?? {}).map(([k, v]) => `${k}: ${v as number}`).join(', ') || '0'} | ${fmt(x.heartbeat_ack_ms.p50, 2)} | ${fmt(x.heartbeat_ack_ms.p99, 2)} |`),
  ]);

  section(L, '## 6. Pipelines (`techdeck`, 6 stages, 50-turn transcript, built-in agents)', sc.pipelines, (pl) => [
    `Store: ${pl.store}.`,
    '',
    '| concurrent runs | runs | statuses | runs/s | p50 ms | p95 ms | client p95 ms |',
    '|---:|---:|---|---:|---:|---:|---:|',
    ...pl.levels.map((x: Any) => `| ${x.concurrency} | ${x.runs} | ${Object.entries(x.statuses).map(([k, v]) => `${k} ${v as number}`).join(', ')} | ${fmt(x.runs_per_s, 2)} | ${fmt(x.latency_ms.p50, 0)} | ${fmt(x.latency_ms.p95, 0)} | ${fmt(x.client_latency_ms.p95, 0)} |`),
  ]);

  // Older result files have no multi-process scenario: no section at all rather than "not run".
  if (sc.multiprocess) {
    section(L, '## 7. Two server processes (PostgreSQL + Redis): tasks created on A, agents on B', sc.multiprocess, (mp) => [
      `End to end: ${fmt(mp.throughput.completed)}/${fmt(mp.throughput.n)} tasks completed, **${fmt(mp.throughput.tasks_per_s)} tasks/s** (${mp.agents} agents); CPU µs per task ${cpuText(mp.throughput.cpu)}.`,
      '',
      '| offered /s | achieved /s | delegated | create→delegate p50 ms | p95 ms | p99 ms | POST p50 / p95 ms | CPU µs per task |',
      '|---:|---:|---:|---:|---:|---:|---:|---|',
      ...mp.latency.map((r: Any) => {
        const d = r.delegate_latency_ms;
        return `| ${r.offered_rate} | ${fmt(r.achieved_rate)} | ${r.delegated} | ${fmt(d.p50, 2)} | ${fmt(d.p95, 2)} | ${fmt(d.p99, 2)} | ${fmt(r.create_response_ms.p50, 2)} / ${fmt(r.create_response_ms.p95, 2)} | ${cpuText(r.cpu)} |`;
      }),
      ...warmupLine(mp.warmup),
    ]);
  }
  // Older result files have no backlog scenario: no section.
  if (sc.backlog) {
    section(L, '## 8. A backlog nobody serves (its agents down), and the creates that go on', sc.backlog, (bl) => [
      `Store: ${bl.store}; ${fmt(bl.backlog, 0)} tasks need a capability no connected agent has (batch-created in ${fmt(bl.fill_seconds)} s); one agent connected; one create at a time.`,
      '',
      '| tasks waiting | create | n | p50 ms | p95 ms | p99 ms | last queue_position |',
      '|---:|---|---:|---:|---:|---:|---:|',
      ...bl.phases.flatMap((ph: Any) => [['runs at once (leased at insert)', ph.runs_now], ['joins the backlog', ph.joins_backlog]].map(([what, c]: Any) =>
        `| ${fmt(ph.waiting, 0)} | ${what} | ${c.n} | ${fmt(c.response_ms.p50, 2)} | ${fmt(c.response_ms.p95, 2)} | ${fmt(c.response_ms.p99, 2)} | ${fmt(c.last_queue_position, 0)} |`)),
    ]);
  }
  return L.join('\n');
}
