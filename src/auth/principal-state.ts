/**
 * The live state of a principal, re-read on every request so that disabling a user, lowering
 * its role or deleting an agent takes effect on its next request (SPEC §4.1). A tiny per-process
 * cache is invalidated through the event bus (principal:revoked).
 *
 * It is also the one place that tells a deleted agent from a live one. Every caller presents the
 * principal's credentials (REST bearer token, socket handshake, refresh token), so finding a
 * deleted agent here raises `revoked_agent_credentials` (SPEC §9; high, as for a deleted agent's
 * API key in AgentService) — at most once per agent per ALERT_WINDOW_MS in this process, so a
 * client retrying in a loop makes one alert, not one per request. The caller still refuses.
 */
import { isUuid, newId, type EventBus } from '../core/index.ts';
import type { Db } from '../store/index.ts';
import type { Principal, Role } from './rbac.ts';
import { mfaDeadlineSql, mfaOverdueSql, NO_MFA_REQUIREMENT, type MfaPolicy } from './mfa-policy.ts';

const ALERT_WINDOW_MS = 5 * 60_000;
/** Agents remembered as already alerted (oldest forgotten first). */
const ALERTED_MAX = 10_000;

/**
 * Live role and name (and, for a user, whether MFA enrolment is overdue: see MfaPolicy);
 * `gone`: disabled/deleted user or unknown principal; `deleted_agent`: alerted on use.
 */
type Entry = { role: Role; name: string; mfaOverdue: boolean; mfaDeadline: number | null; at: number } | 'gone' | 'deleted_agent';

export interface PrincipalStateOptions {
  /** How long a live state is reused (ms). */
  ttlMs?: number;
  /** Who must enrol MFA by when; a user past the deadline comes back with `mfaOverdue`. */
  mfa?: MfaPolicy;
}

export class PrincipalState {
  private readonly cache = new Map<string, Entry>();
  /** agent id → until when a further use raises no new alert. */
  private readonly alertedUntil = new Map<string, number>();

  private readonly ttlMs: number;
  private readonly mfa: MfaPolicy;

  constructor(private readonly db: Db, private readonly bus: EventBus, opts: PrincipalStateOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 2000;
    this.mfa = opts.mfa ?? NO_MFA_REQUIREMENT;
    bus.on('principal:revoked', (e) => this.cache.delete(`${e.subject_type}:${e.subject_id}`));
  }

  invalidate(type: 'user' | 'agent', id: string): void {
    this.cache.delete(`${type}:${id}`);
  }

  /** The principal with its current role, or null when disabled/deleted (a deleted agent is alerted, see above). */
  async current(p: Principal): Promise<Principal | null> {
    const key = `${p.type}:${p.id}`;
    let entry = this.cache.get(key);
    if (entry === undefined || (typeof entry === 'object' && Date.now() - entry.at >= this.ttlMs)) {
      entry = await this.load(p);
      this.cache.set(key, entry);
      if (typeof entry !== 'object') setTimeout(() => this.cache.delete(key), this.ttlMs).unref();
    }
    if (entry === 'deleted_agent') this.alertDeletedAgent(p.id);
    if (typeof entry !== 'object') return null;
    const mfa = entry.mfaOverdue ? { mfaOverdue: true as const } : entry.mfaDeadline !== null ? { mfaDeadline: entry.mfaDeadline } : {};
    return { ...p, role: entry.role, name: entry.name, ...mfa };
  }

  private async load(p: Principal): Promise<Entry> {
    if (p.type === 'user') {
      if (!isUuid(p.id)) return 'gone';
      const { rows } = await this.db.query<{ role: Role; name: string; mfa_overdue: boolean; mfa_deadline: Date | null }>(
        `SELECT role, username AS name, ${mfaOverdueSql('$2', '$3')} AS mfa_overdue, ${mfaDeadlineSql('$2', '$3')} AS mfa_deadline
         FROM users WHERE user_id = $1::uuid AND deleted_at IS NULL AND NOT disabled`,
        [p.id, [...this.mfa.requiredRoles], this.mfa.graceSeconds]);
      const r = rows[0];
      return r ? { role: r.role, name: r.name, mfaOverdue: r.mfa_overdue, mfaDeadline: r.mfa_deadline ? new Date(r.mfa_deadline).getTime() : null, at: Date.now() } : 'gone';
    }
    const { rows } = await this.db.query<{ role: Role; name: string; deleted: boolean }>('SELECT role, agent_id AS name, deleted_at IS NOT NULL AS deleted FROM agents WHERE agent_id = $1', [p.id]);
    const row = rows[0];
    if (!row) return 'gone';
    return row.deleted ? 'deleted_agent' : { role: row.role, name: row.name, mfaOverdue: false, mfaDeadline: null, at: Date.now() };
  }

  private alertDeletedAgent(agentId: string): void {
    const now = Date.now();
    if ((this.alertedUntil.get(agentId) ?? 0) > now) return;
    this.alertedUntil.delete(agentId);
    if (this.alertedUntil.size >= ALERTED_MAX) this.alertedUntil.delete(this.alertedUntil.keys().next().value!);
    this.alertedUntil.set(agentId, now + ALERT_WINDOW_MS);
    this.bus.emit('system:security_alert', { alert_id: newId(), rule: 'revoked_agent_credentials', severity: 'high', message: `A deleted agent's token was used (agent ${agentId}).` });
  }
}
