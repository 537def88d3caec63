import { afterEach, describe, expect, it } from 'vitest';
import { EventBus } from '../core/index.ts';
import { LabelGuard, Metrics } from './metrics.ts';

const open: Metrics[] = [];
const make = () => {
  const m = new Metrics({ defaultMetrics: false });
  open.push(m);
  return m;
};
afterEach(() => {
  for (const m of open.splice(0)) m.close();
});

/** Sum of a counter's or gauge's series matching `labels`. */
async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await m.registry.getSingleMetric(name)!.get();
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((a, v) => a + v.value, 0);
}

describe('Metrics', () => {
  it('keeps one registry per instance (two servers in one process do not share counts)', async () => {
    const a = make();
    const b = make();
    a.securityAlert('r1');
    expect(await value(a, 'mcp_security_alerts_total', { rule: 'r1' })).toBe(1);
    expect(await value(b, 'mcp_security_alerts_total', { rule: 'r1' })).toBe(0);
  });

  it('feeds task, pipeline and alert metrics from the event bus, and stops on close', async () => {
    const m = make();
    const bus = new EventBus();
    m.attach(bus);
    bus.emit('agent:registered', { agent_id: 'a1', type: 'therapist', capabilities: ['x'] });
    bus.emit('task:created', { task_id: 't1', task_type: 'bias_detection', priority: 5, pipeline_id: null, stage: null });
    bus.emit('task:completed', { task_id: 't1', agent_id: 'a1', attempt: 1, task_type: 'bias_detection', pipeline_id: null, stage: null, duration_ms: 1500 });
    bus.emit('task:failed', { task_id: 't2', agent_id: 'a1', attempt: 1, task_type: 'bias_detection', pipeline_id: null, stage: null, error: { code: 'TASK_TIMEOUT', message: '', retryable: true }, dead_letter: false, will_retry: true });
    bus.emit('task:failed', { task_id: 't3', agent_id: null, attempt: 0, task_type: 'bias_detection', pipeline_id: null, stage: null, error: { code: 'BOOM', message: '', retryable: false }, dead_letter: true, will_retry: false });
    bus.emit('pipeline:created', { pipeline_id: 'p1', template: 'techdeck', name: 'n' });
    bus.emit('pipeline:completed', { pipeline_id: 'p1', status: 'completed' });
    bus.emit('system:security_alert', { alert_id: 'x', rule: 'refresh_token_reuse', severity: 'high', message: '' });
    await new Promise((r) => setTimeout(r, 10)); // the pipeline observation is async
    expect(await value(m, 'mcp_tasks_created_total', { task_type: 'bias_detection' })).toBe(1);
    expect(await value(m, 'mcp_tasks_completed_total', { status: 'completed', agent_type: 'therapist' })).toBe(1);
    expect(await value(m, 'mcp_tasks_completed_total', { status: 'timeout', agent_type: 'therapist' })).toBe(1);
    expect(await value(m, 'mcp_tasks_completed_total', { status: 'failed', agent_type: 'none' })).toBe(1);
    const text = await m.scrape();
    expect(text).toMatch(/^mcp_task_duration_seconds_sum 1\.5$/m);
    expect(text).toMatch(/^mcp_pipeline_duration_seconds_count\{template="techdeck",status="completed"\} 1$/m);
    expect(await value(m, 'mcp_security_alerts_total', { rule: 'refresh_token_reuse' })).toBe(1);
    m.close();
    bus.emit('task:created', { task_id: 't9', task_type: 'bias_detection', priority: 5, pipeline_id: null, stage: null });
    expect(await value(m, 'mcp_tasks_created_total', { task_type: 'bias_detection' })).toBe(1);
  });

  it('bounds label cardinality: a flood of task types folds into "other"', async () => {
    const m = make();
    const bus = new EventBus();
    m.attach(bus);
    for (let i = 0; i < 500; i++) bus.emit('task:created', { task_id: `t${i}`, task_type: `type_${i}`, priority: 5, pipeline_id: null, stage: null });
    const series = (await m.tasksCreated.get()).values;
    expect(series.length).toBe(201); // 200 distinct + other
    expect(series.find((s) => s.labels.task_type === 'other')?.value).toBe(300);
  });

  it('LabelGuard keeps known values, folds newcomers past the limit, names empties', () => {
    const g = new LabelGuard(2);
    expect([g.value('a'), g.value('b'), g.value('c'), g.value('a'), g.value(''), g.value(null)]).toEqual(['a', 'b', 'other', 'a', 'other', 'other']);
  });

  it('encodes breaker states and reports event-loop lag', async () => {
    const m = make();
    m.breakerState('flask', 'half_open');
    expect(await value(m, 'mcp_circuit_breaker_state', { service_name: 'flask' })).toBe(1);
    m.breakerState('flask', 'open');
    expect(await value(m, 'mcp_circuit_breaker_state', { service_name: 'flask' })).toBe(2);
    await new Promise((r) => setTimeout(r, 60));
    const lag = m.eventLoopLag();
    expect(lag.p99_ms).toBeGreaterThanOrEqual(lag.p50_ms);
    expect(lag.window_ms).toBeGreaterThan(0);
  });
});
