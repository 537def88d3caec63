import { describe, expect, it } from 'vitest';
import { evaluateGoals, renderGoals } from '../../bench/lib/goals.ts';

const result = (over: Record<string, unknown> = {}) => ({
  mode: 'full',
  scenarios: {
    bullmq: { runs: [], ratios: [{ store: 'PGlite + in-process', ratio: 2 }, { store: 'PostgreSQL + Redis', ratio: 0.518 }] },
    latency: { runs: [{ offered_rate: 100, delegate_latency_ms: { p95: 2, p99: 3 } }, { offered_rate: 500, delegate_latency_ms: { p95: 9.5, p99: 15.2 } }] },
    rest: { routes: [
      { route: 'GET /api/v1/tasks/{id}', offered_per_s: null, latency_ms: { p95: 400 } },
      { route: 'GET /api/v1/tasks/{id}', offered_per_s: 1000, latency_ms: { p95: 6.51 } },
      { route: 'POST /api/v1/tasks', offered_per_s: 1000, latency_ms: { p95: 210 } },
    ] },
    throughput: { runs: [{ store: 'PGlite + in-process', tasks_per_s: 1000 }, { store: 'PostgreSQL + Redis', tasks_per_s: 150 }] },
    pipelines: { levels: [{ concurrency: 1, latency_ms: { p95: 300 } }, { concurrency: 50, latency_ms: { p95: 8142 } }] },
    sockets: { levels: [{ connected: 1000, server_rss_mb_connected: 350, server_rss_mb_peak: 401 }, { connected: 10_000, server_rss_mb_connected: 492.2, server_rss_mb_peak: 1100 }] },
    multiprocess: { latency: [{ offered_rate: 500, delegate_latency_ms: { p99: 59.71 } }] },
    ...over,
  },
});

describe('benchmark goals', () => {
  it('reads each goal from its scenario and says whether this run met it', () => {
    const g = evaluateGoals(result());
    expect(g.map((x) => [x.measured, x.met])).toEqual([
      ['0.518', false], // the PostgreSQL ratio, not PGlite's
      ['15.2 ms', true], // the 500/s phase, not 100/s
      ['6.51 ms', true], // the fixed-rate GET, not the closed loop
      ['492.2 MB connected, 1100 MB peak', false], // judged on the peak
      ['59.71 ms', false],
      ['210 ms', false], // SPEC §13: the worst fixed-rate route (not the closed loop's 400)
      ['9.5 ms', true], // delivery p95 at 500/s
      ['8,142 ms', true], // the slowest pipeline level
      ['10,000', true],
      ['9,000', false], // PostgreSQL's 150 tasks/s, not PGlite's
    ]);
  });

  it('reports a goal as not measured when its scenario failed, was skipped, or the run was a smoke run', () => {
    const g = evaluateGoals(result({ bullmq: { skipped: 'Redis not reachable' }, latency: { error: 'boom' }, sockets: { levels: [{ connected: 1000 }] } }));
    expect(g.map((x) => x.met)).toEqual([null, null, true, null, false, false, null, true, true, false]);
    expect(evaluateGoals({ ...result(), mode: 'smoke' }).every((x) => x.met === null && x.measured === null)).toBe(true);
    expect(renderGoals(g).join('\n')).toContain('| not measured | – |');
    expect(renderGoals(g).join('\n')).toContain('| 59.71 ms | **no** |');
  });
});
