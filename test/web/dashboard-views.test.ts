/**
 * The dashboard's pure parts (web/js): views render server data escaped (no markup injection),
 * show what each role may open, and the live charts' rolling statistics.
 */
import { describe, expect, it } from 'vitest';
import * as fc from 'fast-check';
import { esc, renderAgents, renderAlerts, renderDeadLetter, renderTasks, renderPipelines, renderMfa, viewsFor, bar, ago } from '../../web/js/views.js';
import { LiveStats, quantile } from '../../web/js/live-stats.js';

const NOW = Date.parse('2026-11-25T10:00:00Z');
const HOSTILE = '<img src=x onerror=alert(1)>"\'`&';

describe('dashboard views', () => {
  it('escapes every server value: no tag, quote or backtick survives', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      const out = esc(s);
      expect(out).not.toMatch(/[<>"'`]/);
      expect(out.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))).toBe(s);
    }));
    const agent = { agent_id: HOSTILE, name: HOSTILE, type: 't', status: 'active', draining: false, builtin: false, capabilities: [HOSTILE], load: 1, max_concurrent_tasks: 4, score: 0.75, last_heartbeat: '2026-11-25T09:59:50Z' };
    const html = renderAgents([agent], NOW);
    expect(html).not.toContain('<img');
    expect(html).toContain('&#60;img src=x onerror=alert(1)&#62;');
    expect(html).toContain('1 active of 1');
    expect(html).toContain('10 s ago');
    expect(html).toContain('1 / 4');
  });

  it('renders the task queue with its filters kept, dead letters with a retry per task, alerts with acknowledgement', () => {
    const task = { task_id: '0190a0b0-0000-7000-8000-0000000000ab', task_type: 'bias_detection', status: 'running', priority: 8, assigned_agent: 'agent-1', attempt: 2, progress: 0.5, created_at: '2026-11-25T09:58:00Z', updated_at: '2026-11-25T09:59:00Z', error: { code: 'AGENT_CRASHED' } };
    const tasks = renderTasks([task], { status: 'running', task_type: 'bias"x' }, 1, NOW);
    expect(tasks).toContain('<option value="running" selected>');
    expect(tasks).toContain('value="bias&#34;x"');
    expect(tasks).toContain('aria-valuenow="50"');
    expect(tasks).toContain('2 min ago');
    const dead = renderDeadLetter([task], NOW);
    expect(dead).toContain(`data-action="retry" data-task="${task.task_id}"`);
    expect(dead).toContain('AGENT_CRASHED');
    const alerts = renderAlerts([
      { alert_id: 'a1', severity: 'high', rule: 'refresh_token_reuse', message: 'reuse', created_at: '2026-11-25T09:00:00Z', acknowledged_at: null },
      { alert_id: 'a2', severity: 'low', rule: 'x', message: 'y', created_at: '2026-11-25T09:00:00Z', acknowledged_at: '2026-11-25T09:10:00Z', acknowledged_by: 'user:admin' },
    ], NOW);
    expect(alerts).toContain('data-action="ack" data-alert="a1"');
    expect(alerts).not.toContain('data-alert="a2"');
    expect(alerts).toContain('acknowledged by user:admin');
  });

  it('shows a pipeline\'s stages with their progress', () => {
    const p = { pipeline_id: 'p-1', template: 'techdeck', status: 'running', progress: 0.5, created_at: '2026-11-25T09:59:00Z' };
    const detail = { ...p, name: 'TechDeck', stages: [{ stage: 'ingestion', name: 'Ingestion', status: 'completed', progress: 1, runs: 1, started_at: null, completed_at: null }, { stage: 'standardization', name: 'Standardization', status: 'running', progress: 0.25, runs: 1, started_at: null, completed_at: null }] };
    const html = renderPipelines([p], detail, NOW);
    expect(html.match(/role="progressbar"/g)).toHaveLength(3);
    expect(html).toContain('aria-valuenow="25"');
    expect(html).toContain('Standardization');
  });

  it('offers each role only the views its permissions open', () => {
    expect(viewsFor('worker')).toEqual(['agents', 'tasks', 'charts']);
    expect(viewsFor('supervisor')).toEqual(['agents', 'tasks', 'pipelines', 'dead-letter', 'charts']);
    expect(viewsFor('admin')).toEqual(['agents', 'tasks', 'pipelines', 'dead-letter', 'charts', 'audit', 'alerts']);
    expect(viewsFor('worker', true)).toEqual(['agents', 'tasks', 'charts', 'mfa']);
  });

  it('walks MFA enrolment: start, then the secret and recovery codes (escaped) and a code form', () => {
    expect(renderMfa({ setup: null, deadline: '2026-11-28T10:00:00.000Z', overdue: false, error: null })).toContain('by 2026-11-28T10:00:00.000Z');
    const overdue = renderMfa({ setup: null, deadline: null, overdue: true, error: null });
    expect(overdue).toContain('grace period is over');
    expect(overdue).toContain('data-action="mfa-start"');
    const html = renderMfa({ setup: { secret: 'JBSWY3DPEHPK3PXP', otpauth_url: 'otpauth://totp/MCP:admin?secret=JBSWY3DPEHPK3PXP&issuer=<x>', recovery_codes: ['aaaa-bbbb', 'cccc-dddd'] }, deadline: null, overdue: true, error: 'That code is not valid' });
    expect(html).toContain('<code class="secret">JBSWY3DPEHPK3PXP</code>');
    expect(html).toContain('&#60;x&#62;');
    expect(html.match(/<li>/g)).toHaveLength(2);
    expect(html).toContain('data-form="mfa-verify"');
    expect(html).toContain('That code is not valid');
  });

  it('formats bars and ages', () => {
    expect(bar(1.7)).toContain('aria-valuenow="100"');
    expect(bar(-1)).toContain('aria-valuenow="0"');
    expect(ago(null, NOW)).toBe('—');
    expect(ago('2026-11-25T07:00:00Z', NOW)).toBe('3 h ago');
  });
});

describe('live statistics', () => {
  it('counts completions per bucket and their duration quantiles, forgetting old buckets', () => {
    const s = new LiveStats(10_000, 3);
    const t0 = Date.parse('2026-11-25T10:00:00Z');
    for (const d of [10, 20, 30, 40]) s.record(t0 + 1000, d);
    s.record(t0 + 12_000, null);
    s.record(t0 + 15_000, 100);
    const series = s.series(t0 + 25_000);
    expect(series.map((p) => p.count)).toEqual([4, 2, 0]);
    expect(series[0]).toMatchObject({ perMin: 24, p50: 20, p95: 40 });
    expect(series[1]).toMatchObject({ p50: 100, p95: 100 });
    expect(series[2]).toMatchObject({ p50: null, p95: null });
    s.record(t0 + 41_000, 5); // three buckets later: the first one is gone
    expect(s.series(t0 + 41_000).map((p) => p.count)).toEqual([0, 0, 1]);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toBe(10);
  });
});
