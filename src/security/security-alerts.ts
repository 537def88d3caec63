/**
 * SecurityAlerts: where breach-detection alerts go (SPEC §9). Each alert is stored in
 * `security_alerts`, emitted on the bus as `system:security_alert` (Socket.IO sends it to admins;
 * metrics count it), passed to an optional `onAlert` callback, and POSTed to an optional
 * webhook. The webhook body carries only the alert's id, rule, severity, time and a message that
 * names principals by username / agent id — never PHI, never tokens.
 *
 * Services that emit `system:security_alert` themselves (TokenService on refresh-token reuse,
 * AgentService on a deleted agent's key) are picked up by `attach(bus)`: their alerts are stored
 * and forwarded to the webhook without being emitted a second time.
 */
import { NotFoundError, newId, systemClock, type Clock, type EventBus } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';

export type AlertSeverity = 'low' | 'medium' | 'high' | 'critical';
const SEVERITIES: readonly AlertSeverity[] = ['low', 'medium', 'high', 'critical'];

/** The detection rules of SPEC §9 (others may be recorded). */
export const ALERT_RULES = [
  'failed_login_burst',
  'refresh_token_reuse',
  'phi_bulk_read',
  'authorization_failure_burst',
  'revoked_agent_credentials',
  'audit_chain_broken',
] as const;

export interface AlertInput {
  rule: string;
  severity: AlertSeverity;
  /** Human-readable; no PHI, no secrets. */
  message: string;
  /** Structured facts (counts, windows, scope); no PHI. */
  details?: Record<string, unknown>;
  /** `user:<name>` / `agent:<id>` / `ip:<addr>` the alert is about. */
  principal?: string | null;
}

export interface SecurityAlert {
  alert_id: string;
  rule: string;
  severity: AlertSeverity;
  message: string;
  details: Record<string, unknown>;
  principal: string | null;
  created_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}

export interface AlertFilters {
  rule?: string;
  severity?: AlertSeverity;
  /** true → only acknowledged, false → only open. */
  acknowledged?: boolean;
}

export interface SecurityAlertsOptions {
  /** POST target for alerts (MCP_SECURITY_WEBHOOK_URL); empty = none. */
  webhookUrl?: string;
  webhookTimeoutMs?: number;
  /** Called once per stored alert (metrics). */
  onAlert?: (rule: string, severity: AlertSeverity) => void;
  /** Logs webhook and bus-listener failures. */
  onError?: (err: unknown, what: string) => void;
  clock?: Clock;
}

interface AlertRow {
  alert_id: string;
  rule: string;
  severity: AlertSeverity;
  message: string;
  details: Record<string, unknown>;
  principal: string | null;
  created_at: Date | string;
  acknowledged_at: Date | string | null;
  acknowledged_by: string | null;
}

const COLUMNS = 'alert_id::text AS alert_id, rule, severity, message, details, principal, created_at, acknowledged_at, acknowledged_by';
const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

function toAlert(r: AlertRow): SecurityAlert {
  return { ...r, details: r.details ?? {}, created_at: iso(r.created_at)!, acknowledged_at: iso(r.acknowledged_at) };
}

/** GET /security/alerts `sort` (SPEC §2 `field:asc|desc`); ties by alert id in the same direction. */
export const ALERT_SORTS = ['created_at:desc', 'created_at:asc', 'severity:desc', 'severity:asc'] as const;
export type AlertSort = typeof ALERT_SORTS[number];
const SEVERITY_RANK = "array_position(ARRAY['low', 'medium', 'high', 'critical'], severity)";
const ALERT_ORDER_BY: Record<AlertSort, string> = {
  'created_at:desc': 'created_at DESC, alert_id DESC',
  'created_at:asc': 'created_at ASC, alert_id ASC',
  'severity:desc': `${SEVERITY_RANK} DESC, created_at DESC, alert_id DESC`,
  'severity:asc': `${SEVERITY_RANK} ASC, created_at ASC, alert_id ASC`,
};

export class SecurityAlerts {
  onAlert: ((rule: string, severity: AlertSeverity) => void) | undefined;
  private readonly ownIds = new Set<string>();
  private readonly clock: Clock;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly db: Db, private readonly bus: EventBus, private readonly opts: SecurityAlertsOptions = {}) {
    this.onAlert = opts.onAlert;
    this.clock = opts.clock ?? systemClock;
  }

  /** Stores the alerts other services emit on the bus. Returns the unsubscribe function. */
  attach(): () => void {
    return this.bus.on('system:security_alert', (e) => {
      if (this.ownIds.delete(e.alert_id)) return;
      const severity = SEVERITIES.includes(e.severity as AlertSeverity) ? (e.severity as AlertSeverity) : 'high';
      this.track(this.store({ rule: e.rule, severity, message: e.message }, e.alert_id).catch((err: unknown) => this.opts.onError?.(err, 'store bus alert')));
    });
  }

  /** Stores, emits, counts and forwards a new alert. */
  async raise(input: AlertInput, q: Queryable = this.db): Promise<SecurityAlert> {
    const alert = await this.store(input, newId(), q);
    this.ownIds.add(alert.alert_id);
    this.bus.emit('system:security_alert', { alert_id: alert.alert_id, rule: alert.rule, severity: alert.severity, message: alert.message });
    this.ownIds.delete(alert.alert_id);
    return alert;
  }

  private async store(input: AlertInput, alertId: string, q: Queryable = this.db): Promise<SecurityAlert> {
    const { rows } = await q.query<AlertRow>(
      `INSERT INTO security_alerts (alert_id, rule, severity, message, details, principal, created_at)
       VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6, $7::timestamptz)
       ON CONFLICT (alert_id) DO NOTHING RETURNING ${COLUMNS}`,
      [alertId, input.rule, input.severity, input.message.slice(0, 2000), JSON.stringify(input.details ?? {}), input.principal ?? null, new Date(this.clock.now()).toISOString()],
    );
    const row = rows[0];
    if (!row) return this.get(alertId);
    const alert = toAlert(row);
    this.onAlert?.(alert.rule, alert.severity);
    if (this.opts.webhookUrl) this.track(this.postWebhook(alert));
    return alert;
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** Waits for background work (bus-alert storage, webhooks) — for shutdown and tests. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  private async postWebhook(alert: SecurityAlert): Promise<void> {
    const body = { alert_id: alert.alert_id, rule: alert.rule, severity: alert.severity, message: alert.message, created_at: alert.created_at, source: 'mcp-server' };
    try {
      const res = await fetch(this.opts.webhookUrl!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.webhookTimeoutMs ?? 5000),
      });
      if (!res.ok) throw new Error(`webhook answered ${res.status}`);
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      this.opts.onError?.(err, 'security webhook');
    }
  }

  async get(alertId: string): Promise<SecurityAlert> {
    const { rows } = await this.db.query<AlertRow>(`SELECT ${COLUMNS} FROM security_alerts WHERE alert_id::text = $1`, [alertId]);
    if (!rows[0]) throw new NotFoundError('NOT_FOUND', 'Security alert not found.');
    return toAlert(rows[0]);
  }

  async list(filters: AlertFilters, limit: number, offset: number, sort: AlertSort = 'created_at:desc'): Promise<{ alerts: SecurityAlert[]; total: number }> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filters.rule !== undefined) { params.push(filters.rule); where.push(`rule = $${params.length}`); }
    if (filters.severity !== undefined) { params.push(filters.severity); where.push(`severity = $${params.length}`); }
    if (filters.acknowledged !== undefined) where.push(filters.acknowledged ? 'acknowledged_at IS NOT NULL' : 'acknowledged_at IS NULL');
    const w = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM security_alerts ${w}`, params);
    const { rows } = await this.db.query<AlertRow>(
      `SELECT ${COLUMNS} FROM security_alerts ${w} ORDER BY ${ALERT_ORDER_BY[sort]} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, limit, offset],
    );
    return { alerts: rows.map(toAlert), total: Number(total.rows[0]?.n ?? 0) };
  }

  /** Marks the alert acknowledged (the first acknowledgement is kept). 404 when unknown. */
  async acknowledge(alertId: string, by: string, q: Queryable = this.db): Promise<SecurityAlert> {
    const { rows } = await q.query<AlertRow>(
      `UPDATE security_alerts SET acknowledged_at = COALESCE(acknowledged_at, $2::timestamptz), acknowledged_by = COALESCE(acknowledged_by, $3)
       WHERE alert_id::text = $1 RETURNING ${COLUMNS}`,
      [alertId, new Date(this.clock.now()).toISOString(), by],
    );
    if (!rows[0]) throw new NotFoundError('NOT_FOUND', 'Security alert not found.');
    return toAlert(rows[0]);
  }
}
