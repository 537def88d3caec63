/**
 * RetentionJob: deletes data past its retention period (SPEC §9), run periodically by the
 * leader (compose.ts). Periods come from config (`retention.*`): tasks 90 d, pipelines 180 d,
 * events 30 d, detailed metrics 30 d, offline agents 90 d, audit log 2555 d.
 *
 * Each purge batch runs in its own transaction together with an audit entry recording it
 * (action `purge`, resource_type = the table, resource_id `rows=<n>;before=<cutoff>`), so no
 * row disappears without a trace. The clock is injected: tests move time instead of waiting.
 *
 * What each target removes:
 * - tasks: final tasks (completed, cancelled, dead-lettered failures) finished before the cutoff,
 *   with their task_events;
 * - pipelines: finished runs (completed, partially_completed, failed, cancelled) — stages cascade;
 * - events: task_events rows older than the cutoff;
 * - offline_agents: non-built-in agents offline (or soft-deleted) since before the cutoff;
 * - audit: the audit chain prefix older than the cutoff, through `audit_log_purge` (the database
 *   never lets anything younger than 2555 days go, whatever the config says);
 * - housekeeping: enrollment tokens, refresh tokens and token revocations expired for a day,
 *   idempotency keys once expired (nothing else removes them: each login, refresh, revocation
 *   and keyed request leaves a row);
 * - more targets (e.g. detailed metrics, when a metrics table exists) via `addTarget`.
 * A target whose table does not exist is skipped.
 */
import { systemClock, type Clock } from '../core/index.ts';
import type { Db, Queryable } from '../store/index.ts';
import { SYSTEM_ACTOR, type AuditLog } from './audit-log.ts';

const DAY_MS = 86_400_000;

export interface RetentionPeriods {
  tasks_days: number;
  pipelines_days: number;
  events_days: number;
  metrics_days: number;
  offline_agents_days: number;
  audit_days: number;
}

export const DEFAULT_RETENTION: Readonly<RetentionPeriods> = Object.freeze({
  tasks_days: 90,
  pipelines_days: 180,
  events_days: 30,
  metrics_days: 30,
  offline_agents_days: 90,
  audit_days: 2555,
});

export interface RetentionTarget {
  /** Name in the run report (and the audit entry's resource_type is `table`). */
  name: string;
  table: string;
  days: number;
  /** Deletes at most `limit` rows older than `cutoff`; returns how many went. */
  purge(q: Queryable, cutoff: Date, limit: number): Promise<number>;
}

export interface RetentionResult {
  name: string;
  table: string;
  cutoff: string;
  purged: number;
  skipped?: string;
}

export interface RetentionJobOptions {
  periods?: Partial<RetentionPeriods>;
  clock?: Clock;
  /** Rows per purge transaction. */
  batchSize?: number;
}

/** Housekeeping: rows of `table` whose `expires_at` passed more than `days` ago, found by their key columns `key`. */
function expired(table: string, key: string, days: number): RetentionTarget {
  return {
    name: table, table, days,
    purge: async (q, cutoff, limit) => (await q.query(
      `DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE expires_at < $1::timestamptz LIMIT $2)`,
      [cutoff.toISOString(), limit])).rowCount,
  };
}

export class RetentionJob {
  private readonly clock: Clock;
  private readonly batchSize: number;
  readonly periods: Readonly<RetentionPeriods>;
  private readonly targets: RetentionTarget[];

  constructor(private readonly db: Db, private readonly audit: AuditLog, opts: RetentionJobOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.batchSize = opts.batchSize ?? 5000;
    this.periods = Object.freeze({ ...DEFAULT_RETENTION, ...opts.periods });
    const p = this.periods;
    this.targets = [
      {
        name: 'tasks', table: 'tasks', days: p.tasks_days,
        purge: async (q, cutoff, limit) => {
          const { rows } = await q.query<{ task_id: string }>(
            `DELETE FROM tasks WHERE task_id IN (
               SELECT task_id FROM tasks
               WHERE (status IN ('completed', 'cancelled') OR (status = 'failed' AND dead_letter))
                 AND COALESCE(completed_at, updated_at) < $1::timestamptz
               LIMIT $2)
             RETURNING task_id::text AS task_id`, [cutoff.toISOString(), limit]);
          if (rows.length) await q.query('DELETE FROM task_events WHERE task_id = ANY($1::uuid[])', [rows.map((r) => r.task_id)]);
          return rows.length;
        },
      },
      {
        name: 'pipelines', table: 'pipelines', days: p.pipelines_days,
        purge: async (q, cutoff, limit) => (await q.query(
          `DELETE FROM pipelines WHERE pipeline_id IN (
             SELECT pipeline_id FROM pipelines
             WHERE status IN ('completed', 'partially_completed', 'failed', 'cancelled') AND COALESCE(completed_at, updated_at) < $1::timestamptz
             LIMIT $2)`, [cutoff.toISOString(), limit])).rowCount,
      },
      {
        name: 'events', table: 'task_events', days: p.events_days,
        purge: async (q, cutoff, limit) => (await q.query(
          'DELETE FROM task_events WHERE event_id IN (SELECT event_id FROM task_events WHERE at < $1::timestamptz LIMIT $2)',
          [cutoff.toISOString(), limit])).rowCount,
      },
      {
        name: 'offline_agents', table: 'agents', days: p.offline_agents_days,
        purge: async (q, cutoff, limit) => (await q.query(
          `DELETE FROM agents WHERE agent_id IN (
             SELECT agent_id FROM agents
             WHERE (deleted_at IS NOT NULL AND deleted_at < $1::timestamptz)
               OR (deleted_at IS NULL AND status = 'offline' AND COALESCE(last_seen_at, updated_at) < $1::timestamptz)
             LIMIT $2)`, [cutoff.toISOString(), limit])).rowCount,
      },
      expired('enrollment_tokens', 'token_id', 1),
      // Refresh tokens and revocations mean nothing once their JWT has expired (verification
      // refuses it before either table is read); a day's margin covers clock skew.
      expired('refresh_tokens', 'jti', 1),
      expired('revoked_tokens', 'jti', 1),
      // A stored response is replayed only until the key expires; after that the key is free again.
      expired('idempotency_keys', 'principal, key', 0),
    ];
  }

  /** Adds a target (e.g. detailed metrics owned by another subsystem). */
  addTarget(target: RetentionTarget): void {
    this.targets.push(target);
  }

  private async exists(table: string): Promise<boolean> {
    const { rows } = await this.db.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
    return rows[0]?.t != null;
  }

  /** One pass over every target; returns what was purged. */
  async run(): Promise<RetentionResult[]> {
    const now = this.clock.now();
    const results: RetentionResult[] = [];
    for (const t of this.targets) {
      const cutoff = new Date(now - t.days * DAY_MS);
      const result: RetentionResult = { name: t.name, table: t.table, cutoff: cutoff.toISOString(), purged: 0 };
      results.push(result);
      if (!(await this.exists(t.table))) {
        result.skipped = 'table does not exist';
        continue;
      }
      for (;;) {
        const n = await this.db.transaction(async (tx) => {
          const removed = await t.purge(tx, cutoff, this.batchSize);
          if (removed > 0) {
            await this.audit.audit(tx, { actor: SYSTEM_ACTOR }, {
              action: 'purge', resource_type: t.table, resource_id: `rows=${removed};before=${cutoff.toISOString()}`,
              outcome: 'success', risk_level: 'medium',
            });
          }
          return removed;
        });
        result.purged += n;
        if (n < this.batchSize) break;
      }
    }
    const auditCutoff = new Date(now - this.periods.audit_days * DAY_MS);
    results.push({ name: 'audit', table: 'audit_log', cutoff: auditCutoff.toISOString(), purged: await this.audit.purgeBefore(auditCutoff) });
    return results;
  }
}
