/**
 * BreachDetector: SPEC §9's six breach rules, counted in fixed windows of the coordination
 * layer (`incr`), so every server process shares the counts when Redis is used.
 *
 * | rule                         | trigger (defaults)                                          |
 * |------------------------------|-------------------------------------------------------------|
 * | failed_login_burst           | ≥ 10 failed logins for one username, or from one IP, in 5 min; the username is then locked for 15 min (`loginLockedFor`) |
 * | refresh_token_reuse          | emitted by TokenService on the bus; stored by SecurityAlerts.attach |
 * | phi_bulk_read                | one principal reading > 500 PHI records in 5 min (`notePhiRead`) |
 * | authorization_failure_burst  | ≥ 20 authentication/authorization failures by one principal (or, when anonymous, one IP) in 1 min |
 * | revoked_agent_credentials    | emitted by AgentService on the bus; stored by SecurityAlerts.attach |
 * | audit_chain_broken           | `checkAuditChain` (periodic job and GET /audit/verify) finds a broken link |
 *
 * Each rule fires once per window: exactly when the count crosses its threshold, not again for
 * every further event in the same window.
 *
 * The username lock complements UserService's own limiter (which blocks one username+IP pair
 * after MCP_LOGIN_MAX_FAILURES consecutive failures): this one blocks the username from every
 * IP, which stops a distributed guessing attack on one account.
 * Counter keys hold usernames and IPs (not PHI), never passwords or tokens.
 */
import type { Coordination } from '../coordination/index.ts';
import type { AuditVerification } from './audit-log.ts';
import type { SecurityAlert, SecurityAlerts } from './security-alerts.ts';

export interface BreachDetectorOptions {
  loginFailureThreshold?: number;
  loginWindowMs?: number;
  loginLockMs?: number;
  phiReadThreshold?: number;
  phiReadWindowMs?: number;
  authFailureThreshold?: number;
  authFailureWindowMs?: number;
  onError?: (err: unknown, what: string) => void;
}

type Resolved = Required<Omit<BreachDetectorOptions, 'onError'>>;

const DEFAULTS: Resolved = {
  loginFailureThreshold: 10,
  loginWindowMs: 5 * 60_000,
  loginLockMs: 15 * 60_000,
  phiReadThreshold: 500,
  phiReadWindowMs: 5 * 60_000,
  authFailureThreshold: 20,
  authFailureWindowMs: 60_000,
};

const norm = (username: string) => username.trim().toLowerCase().slice(0, 200);

export class BreachDetector {
  readonly options: Readonly<Resolved>;

  constructor(private readonly coord: Coordination, private readonly alerts: SecurityAlerts, opts: BreachDetectorOptions = {}) {
    const { onError: _ignored, ...rest } = opts;
    this.options = Object.freeze({ ...DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) });
  }

  /** A failed login (wrong password, unknown user, wrong MFA code). Returns the alerts raised. */
  async noteLoginFailure(username: string, ip: string): Promise<SecurityAlert[]> {
    const o = this.options;
    const user = norm(username);
    const [byUser, byIp] = await Promise.all([
      this.coord.incr(`bd:login:user:${user}`, o.loginWindowMs),
      this.coord.incr(`bd:login:ip:${ip}`, o.loginWindowMs),
    ]);
    const raised: SecurityAlert[] = [];
    if (byUser === o.loginFailureThreshold) {
      await this.coord.set(`bd:lock:user:${user}`, { until: Date.now() + o.loginLockMs }, o.loginLockMs);
      raised.push(await this.alerts.raise({
        rule: 'failed_login_burst', severity: 'high', principal: `user:${user}`,
        message: `${byUser} failed logins for username ${user} within ${o.loginWindowMs / 60_000} min; the account is locked for ${o.loginLockMs / 60_000} min.`,
        details: { scope: 'username', username: user, count: byUser, window_seconds: o.loginWindowMs / 1000, locked_seconds: o.loginLockMs / 1000 },
      }));
    }
    if (byIp === o.loginFailureThreshold) {
      raised.push(await this.alerts.raise({
        rule: 'failed_login_burst', severity: 'high', principal: `ip:${ip}`,
        message: `${byIp} failed logins from IP ${ip} within ${o.loginWindowMs / 60_000} min.`,
        details: { scope: 'ip', ip, count: byIp, window_seconds: o.loginWindowMs / 1000 },
      }));
    }
    return raised;
  }

  /** Milliseconds the username stays locked, or 0 when it is not locked. */
  async loginLockedFor(username: string): Promise<number> {
    const lock = await this.coord.get<{ until: number }>(`bd:lock:user:${norm(username)}`);
    return lock ? Math.max(0, lock.until - Date.now()) : 0;
  }

  /** Clears a username's lock and failure count (an admin reset; also used by tests). */
  async unlock(username: string): Promise<void> {
    const user = norm(username);
    await Promise.all([this.coord.del(`bd:lock:user:${user}`), this.coord.del(`bd:login:user:${user}`)]);
  }

  /**
   * `principal` (e.g. `user:<id>`) read `count` PHI records. Fires when the total in the window
   * goes above the threshold. Callers: whoever decrypts PHI for a caller (task/pipeline reads).
   */
  async notePhiRead(principal: string, count: number): Promise<SecurityAlert | null> {
    if (!Number.isFinite(count) || count <= 0) return null;
    const o = this.options;
    const n = Math.ceil(count);
    const total = await this.coord.incr(`bd:phi:${principal}`, o.phiReadWindowMs, n);
    if (total > o.phiReadThreshold && total - n <= o.phiReadThreshold) {
      return this.alerts.raise({
        rule: 'phi_bulk_read', severity: 'high', principal,
        message: `${principal} read ${total} PHI records within ${o.phiReadWindowMs / 60_000} min (threshold ${o.phiReadThreshold}).`,
        details: { count: total, threshold: o.phiReadThreshold, window_seconds: o.phiReadWindowMs / 1000 },
      });
    }
    return null;
  }

  /**
   * An authentication or authorization failure by `principal` (`user:<id>`, `agent:<id>` or
   * `ip:<addr>`). MFA_REQUIRED does not count: a user whose MFA enrolment is overdue proved who
   * they are and was told what to do — audited, but no sign of probing.
   */
  async noteAuthFailure(principal: string, code: string): Promise<SecurityAlert | null> {
    if (code === 'MFA_REQUIRED') return null;
    const o = this.options;
    const n = await this.coord.incr(`bd:authz:${principal}`, o.authFailureWindowMs);
    if (n !== o.authFailureThreshold) return null;
    return this.alerts.raise({
      rule: 'authorization_failure_burst', severity: 'medium', principal,
      message: `${n} authorization failures by ${principal} within ${o.authFailureWindowMs / 1000} s (last: ${code}).`,
      details: { count: n, window_seconds: o.authFailureWindowMs / 1000, last_code: code },
    });
  }

  /**
   * Raises `audit_chain_broken` for a failed verification — once per broken entry (the last one
   * reported is remembered in the coordination layer, so a periodic check does not repeat it).
   */
  async checkAuditChain(result: AuditVerification): Promise<SecurityAlert | null> {
    if (result.ok) return null;
    const b = result.first_broken;
    const first = await this.coord.setIfAbsent(`bd:audit-broken:${b.audit_id}:${b.reason}`, 1, 24 * 3600_000);
    if (!first) return null;
    return this.alerts.raise({
      rule: 'audit_chain_broken', severity: 'critical', principal: null,
      message: `The audit chain is broken at entry ${b.audit_id} (seq ${b.seq ?? '?'}, ${b.reason}).`,
      details: { audit_id: b.audit_id, seq: b.seq, index: b.index, reason: b.reason, checked: result.checked },
    });
  }
}
