/**
 * Prometheus metrics (SPEC §11). One `Metrics` per server instance, each with its own Registry
 * (several servers run in one test process, so the global default registry is never used).
 *
 * Three kinds of source:
 * - the typed EventBus (tasks created/completed, pipeline durations, security alerts);
 * - direct calls from subsystems (HTTP responses, rate limits, WebSocket, external services,
 *   circuit breakers) through the methods below;
 * - the database, read at scrape time (queue depth, active agents, active pipelines), so every
 *   instance behind a load balancer reports the same system-wide values.
 *
 * Label values are bounded: routes are Fastify route patterns (never raw URLs), and every
 * free-form label (task_type, template, rule, service_name…) passes a `LabelGuard` that folds
 * values beyond a fixed number of distinct ones into `other`. No ids are ever labels.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventBus } from '../core/index.ts';

/** The slice of the store port metrics needs (observability sits below store in the tiers). */
export interface MetricsSql {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

export interface MetricsOptions {
  /** Database read at scrape time for queue depth, active agents and pipelines. */
  db?: MetricsSql;
  /** Collect Node.js process metrics (CPU, memory, GC, handles, event loop). Default true. */
  defaultMetrics?: boolean;
  /** Extra labels on every series (e.g. `{instance_role: 'api'}`); keep them constant. */
  defaultLabels?: Record<string, string>;
  /** Called when a scrape-time collector or an event lookup fails (logging). */
  onError?: (err: unknown, what: string) => void;
}

export type BreakerState = 'closed' | 'half_open' | 'open';
export type AiProviderEvent = 'success' | 'error' | 'invalid_output' | 'timeout' | 'rate_limited' | 'circuit_open' | 'fallback';
const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

export interface EventLoopLag {
  mean_ms: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Length of the window the figures cover. */
  window_ms: number;
}

/** Task priorities are integers 1–10 (SPEC §6): all ten series always exist, zero when empty. */
const PRIORITIES = Array.from({ length: 10 }, (_, i) => String(i + 1));
/** Pipeline statuses in which a run still holds resources. */
const ACTIVE_PIPELINE_STATUSES = ['created', 'running', 'paused'];
const TIMEOUT_CODES = new Set(['TASK_TIMEOUT', 'AGENT_DISCONNECTED', 'TIMEOUT']);
const LAG_WINDOW_MS = 30_000;

/** Caps the number of distinct values a label may take; later newcomers become `other`. */
export class LabelGuard {
  private readonly seen = new Set<string>();
  constructor(private readonly limit: number) {}
  value(v: string | null | undefined): string {
    const s = (v ?? '').trim() || 'unknown';
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.limit) return 'other';
    this.seen.add(s);
    return s;
  }
}

/** A small bounded cache (insertion order eviction). */
class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    return this.map.get(k);
  }
  set(k: string, v: V): void {
    if (this.map.has(k)) this.map.delete(k);
    else if (this.map.size >= this.max) {
      const first = this.map.keys().next();
      if (!first.done) this.map.delete(first.value);
    }
    this.map.set(k, v);
  }
  delete(k: string): void {
    this.map.delete(k);
  }
}

function isMissingTable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === '42P01' || (typeof e?.message === 'string' && /relation .* does not exist/i.test(e.message));
}

export class Metrics {
  readonly registry = new Registry();
  readonly contentType: string;

  readonly tasksCreated: Counter<'task_type'>;
  readonly tasksCompleted: Counter<'task_type' | 'status' | 'agent_type'>;
  readonly taskDuration: Histogram<string>;
  readonly taskQueueDepth: Gauge<'priority'>;
  readonly agentsActive: Gauge<'agent_type' | 'status'>;
  readonly pipelinesActive: Gauge<string>;
  readonly pipelineDuration: Histogram<'template' | 'status'>;
  readonly requestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly errors: Counter<'error_type' | 'route'>;
  readonly externalServiceDuration: Histogram<'service_name' | 'operation'>;
  readonly circuitBreakerState: Gauge<'service_name'>;
  readonly aiProviderEvents: Counter<'provider' | 'event'>;
  /** Open Socket.IO connections: realtime calls `wsConnections.inc()` / `.dec()`. */
  readonly wsConnections: Gauge<string>;
  readonly wsLatency: Histogram<string>;
  readonly rateLimited: Counter<'route'>;
  readonly securityAlerts: Counter<'rule'>;
  readonly eventLoopLagGauge: Gauge<'stat'>;

  private readonly guards = {
    taskType: new LabelGuard(200),
    agentType: new LabelGuard(50),
    template: new LabelGuard(100),
    route: new LabelGuard(300),
    errorType: new LabelGuard(200),
    service: new LabelGuard(50),
    operation: new LabelGuard(100),
    rule: new LabelGuard(100),
  };
  private readonly agentTypes = new BoundedMap<string>(10_000);
  private readonly pipelineStarts = new BoundedMap<{ template: string; startedAt: number }>(10_000);
  private readonly unsubscribe: Array<() => void> = [];
  private readonly lag: IntervalHistogram;
  private lagWindowStart = Date.now();
  private lastLag: EventLoopLag | null = null;
  private readonly lagTimer: NodeJS.Timeout;
  private readonly db: MetricsSql | undefined;
  private readonly onError: (err: unknown, what: string) => void;
  private closed = false;

  constructor(opts: MetricsOptions = {}) {
    this.db = opts.db;
    this.onError = opts.onError ?? (() => {});
    const registers = [this.registry];
    if (opts.defaultLabels) this.registry.setDefaultLabels(opts.defaultLabels);
    this.contentType = this.registry.contentType;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;

    this.tasksCreated = new Counter({ name: 'mcp_tasks_created_total', help: 'Tasks created, by task type.', labelNames: ['task_type'], registers });
    this.tasksCompleted = new Counter({
      name: 'mcp_tasks_completed_total',
      help: 'Task attempt outcomes: status is completed, failed, timeout or cancelled; agent_type is the executing agent\'s type (none when unassigned).',
      labelNames: ['task_type', 'status', 'agent_type'], registers,
    });
    this.taskDuration = new Histogram({
      name: 'mcp_task_duration_seconds', help: 'Time from assignment to a recorded result, for completed tasks.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600], registers,
    });
    this.taskQueueDepth = new Gauge({
      name: 'mcp_task_queue_depth', help: 'Pending tasks by priority (1–10), read from the store at scrape time.', labelNames: ['priority'], registers,
      async collect() {
        await self.collect('mcp_task_queue_depth', async (db) => {
          const { rows } = await db.query<{ priority: number; n: string | number }>(`SELECT priority, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority`);
          this.reset();
          for (const p of PRIORITIES) this.set({ priority: p }, 0);
          for (const r of rows) this.set({ priority: String(r.priority) }, Number(r.n));
        }, () => this.reset());
      },
    });
    this.agentsActive = new Gauge({
      name: 'mcp_agents_active', help: 'Registered (not deleted) agents by type and status, read from the store at scrape time.', labelNames: ['agent_type', 'status'], registers,
      async collect() {
        await self.collect('mcp_agents_active', async (db) => {
          const { rows } = await db.query<{ type: string; status: string; n: string | number }>(`SELECT type, status, count(*) AS n FROM agents WHERE deleted_at IS NULL GROUP BY type, status`);
          this.reset();
          for (const r of rows) this.set({ agent_type: self.guards.agentType.value(r.type), status: r.status }, Number(r.n));
        }, () => this.reset());
      },
    });
    this.pipelinesActive = new Gauge({
      name: 'mcp_pipelines_active', help: 'Pipeline runs created, running or paused, read from the store at scrape time.', registers,
      async collect() {
        await self.collect('mcp_pipelines_active', async (db) => {
          try {
            const { rows } = await db.query<{ n: string | number }>(`SELECT count(*) AS n FROM pipelines WHERE status = ANY($1::text[])`, [ACTIVE_PIPELINE_STATUSES]);
            this.set(Number(rows[0]?.n ?? 0));
          } catch (err) {
            if (!isMissingTable(err)) throw err;
            this.set(0); // no pipelines table yet → no pipeline can be running
          }
        }, () => this.reset());
      },
    });
    this.pipelineDuration = new Histogram({
      name: 'mcp_pipeline_duration_seconds', help: 'Pipeline run duration from creation to its final status.', labelNames: ['template', 'status'],
      buckets: [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900, 1800], registers,
    });
    this.requestDuration = new Histogram({
      name: 'mcp_request_duration_seconds', help: 'HTTP request duration by method, route pattern and status code.', labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10], registers,
    });
    this.errors = new Counter({ name: 'mcp_errors_total', help: 'Error responses by error code (SPEC §2) and route pattern.', labelNames: ['error_type', 'route'], registers });
    this.externalServiceDuration = new Histogram({
      name: 'mcp_external_service_duration_seconds', help: 'Calls to external services (Flask, AI providers) by service and operation.', labelNames: ['service_name', 'operation'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers,
    });
    this.circuitBreakerState = new Gauge({ name: 'mcp_circuit_breaker_state', help: 'Circuit breaker state per service: 0 closed, 1 half-open, 2 open.', labelNames: ['service_name'], registers });
    this.aiProviderEvents = new Counter({
      name: 'mcp_ai_provider_events_total', help: 'AI provider quality (SPEC §10): calls by outcome (success, error, invalid_output, timeout), and refusals (rate_limited, circuit_open) and fallbacks to the next provider.',
      labelNames: ['provider', 'event'], registers,
    });
    this.wsConnections = new Gauge({ name: 'mcp_ws_connections', help: 'Open Socket.IO connections on this instance.', registers });
    this.wsLatency = new Histogram({
      name: 'mcp_ws_latency_seconds', help: 'Socket.IO delivery / round-trip latency.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers,
    });
    this.rateLimited = new Counter({ name: 'mcp_rate_limited_total', help: 'Requests refused with 429 by route pattern.', labelNames: ['route'], registers });
    this.securityAlerts = new Counter({ name: 'mcp_security_alerts_total', help: 'Security alerts raised, by detection rule.', labelNames: ['rule'], registers });

    this.lag = monitorEventLoopDelay({ resolution: 20 });
    this.lag.enable();
    this.lagTimer = setInterval(() => this.rollLagWindow(), LAG_WINDOW_MS);
    this.lagTimer.unref();
    this.eventLoopLagGauge = new Gauge({
      name: 'mcp_event_loop_lag_seconds', help: 'Event-loop delay over the last window (stat: mean, p50, p99, max).', labelNames: ['stat'], registers,
      collect() {
        const l = self.eventLoopLag();
        this.set({ stat: 'mean' }, l.mean_ms / 1000);
        this.set({ stat: 'p50' }, l.p50_ms / 1000);
        this.set({ stat: 'p99' }, l.p99_ms / 1000);
        this.set({ stat: 'max' }, l.max_ms / 1000);
      },
    });

    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  // ---- feeds ---------------------------------------------------------------------------

  /** Subscribes to the domain events that drive task, pipeline and alert metrics. */
  attach(bus: EventBus): void {
    const on = this.unsubscribe;
    on.push(bus.on('agent:registered', (e) => this.agentTypes.set(e.agent_id, e.type)));
    on.push(bus.on('agent:unregistered', (e) => this.agentTypes.delete(e.agent_id)));
    on.push(bus.on('task:created', (e) => this.tasksCreated.inc({ task_type: this.guards.taskType.value(e.task_type) })));
    on.push(bus.on('task:completed', (e) => {
      if (e.duration_ms !== null && e.duration_ms >= 0) this.taskDuration.observe(e.duration_ms / 1000);
      this.countOutcome(e.task_type, 'completed', e.agent_id);
    }));
    on.push(bus.on('task:failed', (e) => this.countOutcome(e.task_type, TIMEOUT_CODES.has(e.error.code) ? 'timeout' : 'failed', e.agent_id)));
    on.push(bus.on('task:cancelled', (e) => {
      void this.lookupTaskType(e.task_id).then((taskType) => this.countOutcome(taskType, 'cancelled', e.agent_id));
    }));
    on.push(bus.on('pipeline:created', (e) => this.pipelineStarts.set(e.pipeline_id, { template: e.template, startedAt: Date.now() })));
    on.push(bus.on('pipeline:completed', (e) => void this.pipelineFinished(e.pipeline_id, e.status)));
    on.push(bus.on('pipeline:failed', (e) => void this.pipelineFinished(e.pipeline_id, e.status)));
    on.push(bus.on('system:security_alert', (e) => this.securityAlert(e.rule)));
  }

  /** One HTTP response (wired to createApp's `onResponse`). `route` must be the route pattern. */
  observeRequest(route: string, method: string, status: number, seconds: number, errorCode?: string): void {
    const r = this.guards.route.value(route);
    this.requestDuration.observe({ method, route: r, status: String(status) }, seconds);
    if (status >= 400) this.errors.inc({ error_type: this.guards.errorType.value(errorCode ?? `HTTP_${status}`), route: r });
  }

  /** A request refused by a rate limit (wired to createApp's `onRateLimited`). */
  rateLimitedRequest(route: string): void {
    this.rateLimited.inc({ route: this.guards.route.value(route) });
  }

  /** A call to an external service (Flask, AI providers), successful or not. */
  externalCall(service: string, operation: string, seconds: number): void {
    this.externalServiceDuration.observe({ service_name: this.guards.service.value(service), operation: this.guards.operation.value(operation) }, seconds);
  }

  /** An AI provider's call outcome, refusal or fallback (`event` is one of a fixed set). */
  aiProviderEvent(provider: string, event: AiProviderEvent): void {
    this.aiProviderEvents.inc({ provider: this.guards.service.value(provider), event });
  }

  /** A circuit breaker's current state. */
  breakerState(service: string, state: BreakerState): void {
    this.circuitBreakerState.set({ service_name: this.guards.service.value(service) }, BREAKER_VALUE[state]);
  }

  /** A Socket.IO delivery or ping round trip. */
  wsLatencySeconds(seconds: number): void {
    this.wsLatency.observe(seconds);
  }

  securityAlert(rule: string): void {
    this.securityAlerts.inc({ rule: this.guards.rule.value(rule) });
  }

  /** An error that did not come from an HTTP response (socket handlers, background jobs). */
  error(errorType: string, route: string): void {
    this.errors.inc({ error_type: this.guards.errorType.value(errorType), route: this.guards.route.value(route) });
  }

  // ---- reads ---------------------------------------------------------------------------

  /** The Prometheus text exposition. */
  async scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** Event-loop delay over the current window (or the last complete one when this one is empty). */
  eventLoopLag(): EventLoopLag {
    const h = this.lag;
    if (h.count > 0 || !this.lastLag) {
      const ms = (ns: number) => (Number.isFinite(ns) ? Number((ns / 1e6).toFixed(3)) : 0);
      return { mean_ms: ms(h.mean), p50_ms: ms(h.percentile(50)), p99_ms: ms(h.percentile(99)), max_ms: ms(h.max), window_ms: Date.now() - this.lagWindowStart };
    }
    return this.lastLag;
  }

  /** Pending tasks per priority (for /health/detailed), straight from the store. */
  async queueDepths(): Promise<{ pending: number; by_priority: Record<string, number>; retrying: number; running: number; dead_letter: number }> {
    if (!this.db) return { pending: 0, by_priority: {}, retrying: 0, running: 0, dead_letter: 0 };
    const [byPriority, byStatus] = await Promise.all([
      this.db.query<{ priority: number; n: string | number }>(`SELECT priority, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY priority ORDER BY priority DESC`),
      this.db.query<{ status: string; dead_letter: boolean; n: string | number }>(
        `SELECT status, dead_letter, count(*) AS n FROM tasks WHERE status IN ('retrying', 'assigned', 'running') OR dead_letter GROUP BY status, dead_letter`),
    ]);
    const by_priority: Record<string, number> = {};
    let pending = 0;
    for (const r of byPriority.rows) {
      by_priority[String(r.priority)] = Number(r.n);
      pending += Number(r.n);
    }
    let retrying = 0;
    let running = 0;
    let dead = 0;
    for (const r of byStatus.rows) {
      if (r.dead_letter) dead += Number(r.n);
      else if (r.status === 'retrying') retrying += Number(r.n);
      else running += Number(r.n);
    }
    return { pending, by_priority, retrying, running, dead_letter: dead };
  }

  /** Stops the event-loop monitor and unsubscribes from the bus. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.lagTimer);
    this.lag.disable();
    for (const off of this.unsubscribe.splice(0)) off();
  }

  // ---- internals -----------------------------------------------------------------------

  private rollLagWindow(): void {
    const cur = this.eventLoopLag();
    if (this.lag.count > 0) this.lastLag = cur;
    this.lag.reset();
    this.lagWindowStart = Date.now();
  }

  private async collect(what: string, fn: (db: MetricsSql) => Promise<void>, onFail: () => void): Promise<void> {
    if (!this.db || this.closed) return;
    try {
      await fn(this.db);
    } catch (err) {
      onFail(); // an absent series is better than a stale one (alerts can use absent())
      this.onError(err, what);
    }
  }

  private countOutcome(taskType: string, status: string, agentId: string | null): void {
    const labels = (agentType: string) => ({ task_type: this.guards.taskType.value(taskType), status, agent_type: this.guards.agentType.value(agentType) });
    if (!agentId) {
      this.tasksCompleted.inc(labels('none'));
      return;
    }
    const known = this.agentTypes.get(agentId);
    if (known) {
      this.tasksCompleted.inc(labels(known));
      return;
    }
    void this.lookupAgentType(agentId).then((t) => this.tasksCompleted.inc(labels(t)));
  }

  private async lookupAgentType(agentId: string): Promise<string> {
    if (!this.db) return 'unknown';
    try {
      const { rows } = await this.db.query<{ type: string }>(`SELECT type FROM agents WHERE agent_id = $1`, [agentId]);
      const t = rows[0]?.type;
      if (t) this.agentTypes.set(agentId, t);
      return t ?? 'unknown';
    } catch (err) {
      this.onError(err, 'agent type lookup');
      return 'unknown';
    }
  }

  private async lookupTaskType(taskId: string): Promise<string> {
    if (!this.db) return 'unknown';
    try {
      const { rows } = await this.db.query<{ task_type: string }>(`SELECT task_type FROM tasks WHERE task_id = $1`, [taskId]);
      return rows[0]?.task_type ?? 'unknown';
    } catch (err) {
      this.onError(err, 'task type lookup');
      return 'unknown';
    }
  }

  private async pipelineFinished(pipelineId: string, status: string): Promise<void> {
    let start = this.pipelineStarts.get(pipelineId);
    this.pipelineStarts.delete(pipelineId);
    if (!start && this.db) {
      // Created on another instance: read its template and creation time from the store.
      try {
        const { rows } = await this.db.query<{ template: string; created_at: Date | string }>(`SELECT template, created_at FROM pipelines WHERE pipeline_id = $1`, [pipelineId]);
        const r = rows[0];
        if (r) start = { template: r.template, startedAt: new Date(r.created_at).getTime() };
      } catch (err) {
        if (!isMissingTable(err)) this.onError(err, 'pipeline lookup');
      }
    }
    if (!start) return;
    this.pipelineDuration.observe({ template: this.guards.template.value(start.template), status }, Math.max(0, (Date.now() - start.startedAt) / 1000));
  }
}
