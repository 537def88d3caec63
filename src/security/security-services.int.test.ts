/**
 * The security services against the real store, on every reachable engine: audit chain in the
 * caller's transaction, append-only triggers, tamper detection, retention purge; breach rules
 * at and below their thresholds; MFA with replay protection; enrollment tokens.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { EventBus, ManualClock, newId } from '../core/index.ts';
import { MemoryCoordination } from '../coordination/index.ts';
import { engines, type TestDb } from '../../test/helpers/stores.ts';
import { KeyRing } from './key-ring.ts';
import { FieldCipher } from './field-cipher.ts';
import { AuditLog, SYSTEM_ACTOR, actorOf, type AuditEntryInput } from './audit-log.ts';
import { SecurityAlerts } from './security-alerts.ts';
import { BreachDetector } from './breach-detector.ts';
import { MfaService } from './mfa-service.ts';
import { EnrollmentTokens } from './enrollment-tokens.ts';
import { RetentionJob } from './retention-job.ts';
import { PhiAccessLog } from './phi-access.ts';
import { generateTotp, totpStep } from './totp.ts';

const DAY = 86_400_000;
const ring = KeyRing.fromMasterKey(randomBytes(32));
const entry = (action: string, extra: Partial<AuditEntryInput> = {}): AuditEntryInput => ({
  actor: actorOf({ type: 'user', id: 'u-1', role: 'admin' }, '10.0.0.1', 'vitest'),
  action, resource_type: 'task', resource_id: newId(), fields: ['parameters'], data_classification: 'phi', request_id: 'req-1', ...extra,
});

for (const engine of engines()) {
  describe(`security services on ${engine.name}`, () => {
    let t: TestDb;
    let passed = true;
    beforeAll(async () => { t = await engine.open(); });
    afterAll(async () => { await t.dispose(!passed); });
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    describe('audit log', () => {
      let audit: AuditLog;
      beforeEach(() => { audit = new AuditLog(t.db, { key: ring.auditChainKey }); });

      it('appends in the caller transaction: committed with it, gone when it rolls back', () => track(async () => {
        const before = (await audit.list({}, { limit: 1000, offset: 0 })).total;
        await t.db.transaction(async (tx) => {
          await audit.append(tx, [entry('read'), entry('update')]);
        });
        await expect(t.db.transaction(async (tx) => {
          await audit.audit(tx, { actor: SYSTEM_ACTOR, request_id: 'req-rolled-back' }, { action: 'delete', resource_type: 'task' });
          throw new Error('caller failed');
        })).rejects.toThrow('caller failed');
        const after = await audit.list({}, { limit: 1000, offset: 0, order: 'asc' });
        expect(after.total).toBe(before + 2);
        expect(after.entries.some((e) => e.request_id === 'req-rolled-back')).toBe(false);
        const last2 = after.entries.slice(-2);
        expect(last2.map((e) => e.action)).toEqual(['read', 'update']);
        expect(last2[1]!.prev_hash).toBe(last2[0]!.hash);
        const v = await audit.verify();
        expect(v.ok).toBe(true);
        expect(v.checked).toBe(before + 2);
      }));

      it('makes the caller fail when the audit write fails', () => track(async () => {
        await expect(t.db.transaction(async (tx) => {
          await tx.query('CREATE TEMP TABLE probe (x int) ON COMMIT DROP');
          await audit.append(tx, [entry('read', { outcome: 'nonsense' as never, resource_type: null as never })]);
        })).rejects.toMatchObject({ code: 'INTERNAL_ERROR' });
      }));

      it('filters the list by actor, action, resource, outcome and time', () => track(async () => {
        const rid = newId();
        await audit.append(t.db, [
          entry('export', { resource_id: rid, actor: actorOf({ type: 'agent', id: 'agent-x', role: 'worker' }) }),
          entry('read', { resource_id: rid, outcome: 'denied' }),
        ]);
        const byActor = await audit.list({ actor: 'agent-x' }, { limit: 10, offset: 0 });
        expect(byActor.entries.map((e) => e.action)).toEqual(['export']);
        const byRes = await audit.list({ resource_type: 'task', resource_id: rid }, { limit: 10, offset: 0, order: 'asc' });
        expect(byRes.entries.map((e) => e.action)).toEqual(['export', 'read']);
        expect((await audit.list({ resource_id: rid, outcome: 'denied' }, { limit: 10, offset: 0 })).entries).toHaveLength(1);
        expect((await audit.list({ resource_id: rid, from: new Date(Date.now() + 60_000).toISOString() }, { limit: 10, offset: 0 })).total).toBe(0);
        expect((await audit.list({ resource_id: rid, to: new Date(Date.now() + 60_000).toISOString() }, { limit: 1, offset: 1 })).total).toBe(2);
      }));

      it('keeps one valid chain when appends alternate between instances (processes) and one rolls back', () => track(async () => {
        const other = new AuditLog(t.db, { key: ring.auditChainKey });
        const before = (await audit.list({}, { limit: 1, offset: 0 })).total;
        for (let i = 0; i < 3; i++) {
          await audit.append(t.db, [entry('read')]);
          await other.append(t.db, [entry('update'), entry('read')]);
        }
        // A rolled-back append leaves nothing to chain.
        await expect(t.db.transaction(async (tx) => {
          await audit.append(tx, [entry('delete')]);
          throw new Error('caller failed');
        })).rejects.toThrow('caller failed');
        await audit.append(t.db, [entry('export')]);
        await other.append(t.db, [entry('read')]);
        const after = await audit.list({}, { limit: 1000, offset: 0, order: 'asc' });
        expect(after.total).toBe(before + 11);
        expect(after.entries.slice(-2).map((e) => e.action)).toEqual(['export', 'read']);
        const v = await audit.verify();
        expect(v.ok).toBe(true);
        // The head row is the last entry's hash; lost, it is rebuilt from the chain by the next append.
        const last = after.entries[after.entries.length - 1]!;
        expect((await t.db.query<{ hash: string }>('SELECT hash FROM audit_head')).rows).toEqual([{ hash: last.hash }]);
        await t.db.query('DELETE FROM audit_head');
        const fresh = new AuditLog(t.db, { key: ring.auditChainKey });
        const [appended] = await fresh.append(t.db, [entry('read')]);
        const [next] = (await fresh.list({}, { limit: 1, offset: 0 })).entries;
        expect(next!.audit_id).toBe(appended!.audit_id);
        expect(next!.prev_hash).toBe(last.hash);
        expect((await t.db.query<{ hash: string }>('SELECT hash FROM audit_head')).rows).toEqual([{ hash: next!.hash }]);
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('chains concurrent appends of one process in order, including a transaction that appends twice', () => track(async () => {
        const before = (await audit.list({}, { limit: 1, offset: 0 })).total;
        const twice = t.db.transaction(async (tx) => {
          await audit.append(tx, [entry('read')]);
          await new Promise((r) => setTimeout(r, 30)); // others commit (and are chained) meanwhile
          await audit.append(tx, [entry('update')]);
        });
        const others = Array.from({ length: 12 }, (_, i) => t.db.transaction((tx) => audit.append(tx, [entry(i % 2 ? 'read' : 'export'), entry('read')])));
        await Promise.all([twice, ...others]);
        const after = await audit.list({}, { limit: 1000, offset: 0, order: 'asc' });
        expect(after.total).toBe(before + 2 + 24);
        const v = await audit.verify();
        expect(v.ok).toBe(true);
      }));

      it('keeps pending entries as protected as the chain until they are chained', () => track(async () => {
        const appended = await audit.append(t.db, [entry('read'), entry('export')]);
        const pending = async () => (await t.db.query<{ audit_id: string }>('SELECT audit_id::text AS audit_id FROM audit_pending ORDER BY id')).rows.map((r) => r.audit_id);
        expect(await pending()).toEqual(appended.map((e) => e.audit_id));
        await expect(t.db.query(`UPDATE audit_pending SET body = '{}'`)).rejects.toThrow(/append-only/);
        await expect(t.db.query('DELETE FROM audit_pending')).rejects.toThrow(/append-only/);
        await expect(t.db.query('TRUNCATE audit_pending')).rejects.toThrow(/append-only/);
        await audit.flush();
        expect(await pending()).toEqual([]);
        const last2 = (await audit.list({}, { limit: 2, offset: 0, order: 'desc' })).entries.reverse();
        expect(last2.map((e) => e.audit_id)).toEqual(appended.map((e) => e.audit_id));
        expect(last2[1]!.prev_hash).toBe(last2[0]!.hash);
        expect((await audit.verify()).ok).toBe(true);
        // The delete rule holds for the whole statement (checked once per DELETE, migration 0009):
        // a pending row whose entry is in the chain may go, but not together with one that is not.
        const [unchained] = await audit.append(t.db, [entry('read')]);
        await t.db.query(`INSERT INTO audit_pending (audit_id, body) VALUES ($1::uuid, '{}')`, [appended[0]!.audit_id]);
        await expect(t.db.query('DELETE FROM audit_pending')).rejects.toThrow(/append-only/);
        expect(await pending()).toEqual([unchained!.audit_id, appended[0]!.audit_id]);
        await t.db.query('DELETE FROM audit_pending WHERE audit_id = $1::uuid', [appended[0]!.audit_id]);
        expect(await pending()).toEqual([unchained!.audit_id]);
        await audit.flush();
        expect(await pending()).toEqual([]);
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('chains in the background once started, including what another process appended', () => track(async () => {
        const chainer = new AuditLog(t.db, { key: ring.auditChainKey });
        chainer.start(50);
        try {
          const [mine] = await chainer.append(t.db, [entry('read')]);
          const [theirs] = await audit.append(t.db, [entry('update')]); // not started: chains only when it reads
          const chained = async (id: string) => (await t.db.query('SELECT 1 FROM audit_log WHERE audit_id = $1::uuid', [id])).rows.length === 1;
          const deadline = Date.now() + 5000;
          while (!((await chained(mine!.audit_id)) && (await chained(theirs!.audit_id))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          expect(await chained(mine!.audit_id)).toBe(true);
          expect(await chained(theirs!.audit_id)).toBe(true);
          expect((await t.db.query('SELECT 1 FROM audit_pending')).rows).toEqual([]);
        } finally {
          await chainer.stop();
        }
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('audits PHI writes computed inside a statement as writes would: per agent and classification, chained and verified', () => track(async () => {
        const phi = new PhiAccessLog(t.db, audit, null, {});
        const params: unknown[] = [];
        const param = (v: unknown) => `$${params.push(v)}`;
        const [a1, a2, b1, pub] = [newId(), newId(), newId(), newId()].sort();
        const rows = [['agent-a', a1, 'phi'], ['agent-a', a2, 'phi'], ['agent-b', b1, 'restricted'], ['agent-b', pub, 'public']]
          .map(([agent, id, cls]) => `(${param(agent)}::text, ${param(id)}::uuid, ${param(cls)}::text)`).join(', ');
        const sql = phi.agentWritesSql('update', 'src', 'task', ['result'], param);
        await t.db.query(`WITH src AS (SELECT * FROM (VALUES ${rows}) AS v(agent_id, task_id, data_classification)), au AS (${sql}) SELECT 1`, params);
        const grouped = (await audit.list({ resource_id: a2 }, { limit: 10, offset: 0 })).entries;
        expect(grouped).toHaveLength(1);
        expect(grouped[0]).toMatchObject({ action: 'update', resource_type: 'task', resource_id: null, resource_ids: [a1, a2], fields: ['result'], data_classification: 'phi', outcome: 'success', risk_level: 'low',
          actor: { type: 'agent', id: 'agent-a', role: null, ip: null, user_agent: null } });
        const single = (await audit.list({ resource_id: b1 }, { limit: 10, offset: 0 })).entries;
        expect(single).toHaveLength(1);
        expect(single[0]).toMatchObject({ resource_id: b1, data_classification: 'restricted', actor: { id: 'agent-b' } });
        expect(single[0]).not.toHaveProperty('resource_ids');
        expect((await audit.list({ resource_id: pub }, { limit: 10, offset: 0 })).total).toBe(0); // not PHI
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('stores grouped entries (resource_ids) so they read back, verify and are found by any of their resources', () => track(async () => {
        const ids = [newId(), newId(), newId()];
        const [stored] = await audit.append(t.db, [entry('create', { resource_id: null, resource_ids: ids, fields: ['parameters'] })]);
        expect(stored!.resource_ids).toEqual(ids);
        for (const id of ids) {
          const found = await audit.list({ resource_type: 'task', resource_id: id }, { limit: 10, offset: 0 });
          expect(found.entries.map((e) => e.audit_id)).toEqual([stored!.audit_id]);
          expect(found.entries[0]!.resource_ids).toEqual(ids);
        }
        expect((await audit.list({ resource_id: newId() }, { limit: 10, offset: 0 })).total).toBe(0);
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('refuses UPDATE, DELETE and TRUNCATE of audit rows', () => track(async () => {
        await audit.append(t.db, [entry('read')]);
        await expect(t.db.query(`UPDATE audit_log SET action = 'nothing'`)).rejects.toThrow(/append-only/);
        await expect(t.db.query('DELETE FROM audit_log')).rejects.toThrow(/append-only/);
        await expect(t.db.query('TRUNCATE audit_log')).rejects.toThrow(/append-only/);
        await expect(t.db.query(`INSERT INTO audit_anchor (seq, hash) VALUES (1, 'x')`)).rejects.toThrow(/append-only/);
        // The purge flag alone does not open the door for young rows (the 2555-day floor).
        await expect(t.db.transaction(async (tx) => {
          await tx.query(`SELECT set_config('mcp.audit_purge', 'on', true)`);
          await tx.query('DELETE FROM audit_log');
        })).rejects.toThrow(/append-only/);
        expect((await audit.verify()).ok).toBe(true);
      }));

      it('verify reports an edit made with the triggers disabled at the right entry, across pages', () => track(async () => {
        await audit.append(t.db, Array.from({ length: 7 }, (_, i) => entry(`read`, { resource_id: `r-${i}` })));
        const all = await audit.list({}, { limit: 1000, offset: 0, order: 'asc' });
        const victim = all.entries[all.entries.length - 3]!;
        await t.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
        try {
          await t.db.query(`UPDATE audit_log SET resource_id = 'forged' WHERE seq = $1`, [victim.seq]);
        } finally {
          await t.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
        }
        const v = await audit.verify(3);
        expect(v.ok).toBe(false);
        if (v.ok) return;
        expect(v.first_broken).toEqual({ audit_id: victim.audit_id, seq: victim.seq, index: all.entries.length - 3, reason: 'hash_mismatch' });

        // A detector raises one alert for it, not one per check.
        const bus = new EventBus();
        const seen: string[] = [];
        bus.on('system:security_alert', (e) => seen.push(e.rule));
        const detector = new BreachDetector(new MemoryCoordination(), new SecurityAlerts(t.db, bus));
        expect((await detector.checkAuditChain(v))?.rule).toBe('audit_chain_broken');
        expect(await detector.checkAuditChain(await audit.verify())).toBeNull();
        expect(seen).toEqual(['audit_chain_broken']);

        // Restore the row (superuser again) so later tests start from an intact chain.
        await t.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
        await t.db.query('UPDATE audit_log SET resource_id = $2 WHERE seq = $1', [victim.seq, victim.resource_id]);
        await t.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
        expect((await audit.verify(3)).ok).toBe(true);
      }));

      it('verify reports a deleted entry as a broken link at its successor', () => track(async () => {
        await audit.append(t.db, [entry('a1'), entry('a2'), entry('a3')]);
        const all = (await audit.list({}, { limit: 1000, offset: 0, order: 'asc' })).entries;
        const gone = all[all.length - 2];
        const next = all[all.length - 1];
        await t.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
        await t.db.query('DELETE FROM audit_log WHERE seq = $1', [gone!.seq]);
        await t.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
        const v = await audit.verify();
        expect(v.ok).toBe(false);
        if (!v.ok) expect(v.first_broken).toMatchObject({ audit_id: next!.audit_id, reason: 'prev_hash_mismatch' });
        // Put it back (same values) so the chain is whole again.
        await t.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
        await t.db.query(
          `INSERT INTO audit_log (seq, audit_id, ts, at, actor, action, resource_type, resource_id, fields, data_classification, outcome, request_id, risk_level, prev_hash, hash)
           VALUES ($1, $2, $3, $15::timestamptz, $4::jsonb, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14)`,
          [gone!.seq, gone!.audit_id, gone!.timestamp, JSON.stringify(gone!.actor), gone!.action, gone!.resource_type, gone!.resource_id, JSON.stringify(gone!.fields), gone!.data_classification, gone!.outcome, gone!.request_id, gone!.risk_level, gone!.prev_hash, gone!.hash, gone!.timestamp]);
        await t.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
        expect((await audit.verify()).ok).toBe(true);
      }));
    });

    describe('breach detector', () => {
      let bus: EventBus;
      let alerts: SecurityAlerts;
      let detector: BreachDetector;
      let emitted: { rule: string; alert_id: string }[];
      beforeEach(() => {
        bus = new EventBus();
        emitted = [];
        bus.on('system:security_alert', (e) => emitted.push(e));
        alerts = new SecurityAlerts(t.db, bus);
        alerts.attach();
        detector = new BreachDetector(new MemoryCoordination(), alerts);
      });

      it('failed logins: 9 for one username raise nothing, the 10th raises and locks the account', () => track(async () => {
        const name = `victim-${newId().slice(-6)}`;
        for (let i = 0; i < 9; i++) expect(await detector.noteLoginFailure(name, `10.1.0.${i}`)).toEqual([]);
        expect(await detector.loginLockedFor(name)).toBe(0);
        const raised = await detector.noteLoginFailure(name.toUpperCase(), '10.1.0.99');
        expect(raised.map((a) => [a.rule, a.principal])).toEqual([['failed_login_burst', `user:${name}`]]);
        expect(await detector.loginLockedFor(name)).toBeGreaterThan(14 * 60_000);
        expect(await detector.noteLoginFailure(name, '10.1.0.98')).toEqual([]); // once per window
        const stored = await alerts.get(raised[0]!.alert_id);
        expect(stored.details).toMatchObject({ scope: 'username', count: 10 });
        expect(emitted.map((e) => e.alert_id)).toEqual([raised[0]!.alert_id]);
      }));

      it('failed logins: 10 from one IP over several usernames raise an IP alert', () => track(async () => {
        for (let i = 0; i < 9; i++) expect(await detector.noteLoginFailure(`user-${i}`, '192.0.2.7')).toEqual([]);
        const raised = await detector.noteLoginFailure('user-9', '192.0.2.7');
        expect(raised.map((a) => a.principal)).toEqual(['ip:192.0.2.7']);
        expect(await detector.loginLockedFor('user-9')).toBe(0);
      }));

      it('reads count towards the rule: summed per principal over the count interval, masked reads not counted', () => track(async () => {
        const audit = new AuditLog(t.db, { key: ring.auditChainKey });
        const coord = new MemoryCoordination();
        let incrs = 0;
        const incr = coord.incr.bind(coord);
        coord.incr = (...args) => { incrs++; return incr(...args); };
        const phi = new PhiAccessLog(t.db, audit, new BreachDetector(coord, alerts), { countEveryMs: 60_000 });
        const reader = actorOf({ type: 'user', id: `bulk-${newId().slice(-6)}`, role: 'admin' }, '10.0.0.9', 'vitest');
        const read = (count: number, unmasked = true) => phi.countRead({ actor: reader }, { classification: 'phi', count, unmasked });
        // Reads in different turns of the event loop (requests arriving apart) share one count.
        read(300);
        await new Promise((r) => setImmediate(r));
        read(200);
        await new Promise((r) => setTimeout(r, 5));
        read(400, false);
        expect(incrs).toBe(0); // not counted before the interval ends…
        await phi.flush(); // …or a flush
        expect(incrs).toBe(1); // one count of 500 for the three reads
        expect(emitted).toEqual([]); // 500: at the threshold
        read(1);
        await phi.flush();
        expect(emitted.map((e) => e.rule)).toEqual(['phi_bulk_read']);
        const [alert] = (await alerts.list({ rule: 'phi_bulk_read' }, 1000, 0)).alerts.filter((a) => a.principal === `user:${reader.id}`);
        expect(alert?.details).toMatchObject({ count: 501 });
      }));

      it('counts reads by itself once the interval has passed', () => track(async () => {
        const coord = new MemoryCoordination();
        const phi = new PhiAccessLog(t.db, new AuditLog(t.db, { key: ring.auditChainKey }), new BreachDetector(coord, alerts), { countEveryMs: 20 });
        const principal = `user:tick-${newId().slice(-6)}`;
        phi.countRead({ actor: actorOf({ type: 'user', id: principal.slice(5), role: 'admin' }) }, { classification: 'phi', count: 7 });
        expect(await coord.incr(`bd:phi:${principal}`, 60_000, 0)).toBe(0);
        await new Promise((r) => setTimeout(r, 100));
        expect(await coord.incr(`bd:phi:${principal}`, 60_000, 0)).toBe(7);
      }));

      it('PHI reads: 500 in the window is fine, the 501st raises once', () => track(async () => {
        expect(await detector.notePhiRead('user:reader', 300)).toBeNull();
        expect(await detector.notePhiRead('user:reader', 200)).toBeNull();
        const a = await detector.notePhiRead('user:reader', 1);
        expect(a?.rule).toBe('phi_bulk_read');
        expect(a?.details).toMatchObject({ count: 501 });
        expect(await detector.notePhiRead('user:reader', 50)).toBeNull();
        expect(await detector.notePhiRead('user:other', 501)).not.toBeNull();
      }));

      it('authorization failures: 19 in a minute raise nothing, the 20th raises', () => track(async () => {
        for (let i = 0; i < 19; i++) expect(await detector.noteAuthFailure('user:prober', 'INSUFFICIENT_PERMISSIONS')).toBeNull();
        const a = await detector.noteAuthFailure('user:prober', 'INSUFFICIENT_PERMISSIONS');
        expect(a).toMatchObject({ rule: 'authorization_failure_burst', principal: 'user:prober' });
        expect(await detector.noteAuthFailure('user:prober', 'INSUFFICIENT_PERMISSIONS')).toBeNull();
      }));

      it('stores refresh-token reuse and revoked-agent alerts emitted by other services, without re-emitting', () => track(async () => {
        const reuse = newId();
        const revoked = newId();
        bus.emit('system:security_alert', { alert_id: reuse, rule: 'refresh_token_reuse', severity: 'high', message: 'reuse' });
        bus.emit('system:security_alert', { alert_id: revoked, rule: 'revoked_agent_credentials', severity: 'high', message: 'revoked' });
        await alerts.settle();
        expect((await alerts.get(reuse)).rule).toBe('refresh_token_reuse');
        expect((await alerts.get(revoked)).rule).toBe('revoked_agent_credentials');
        expect(emitted.map((e) => e.alert_id)).toEqual([reuse, revoked]);
      }));

      it('lists, filters and acknowledges alerts', () => track(async () => {
        const a = await alerts.raise({ rule: 'test_rule', severity: 'low', message: 'm', principal: 'user:x' });
        expect((await alerts.list({ rule: 'test_rule', acknowledged: false }, 10, 0)).alerts.map((x) => x.alert_id)).toEqual([a.alert_id]);
        const acked = await alerts.acknowledge(a.alert_id, 'user:admin');
        expect(acked.acknowledged_by).toBe('user:admin');
        expect(acked.acknowledged_at).not.toBeNull();
        const again = await alerts.acknowledge(a.alert_id, 'user:someone-else');
        expect(again.acknowledged_by).toBe('user:admin');
        expect((await alerts.list({ rule: 'test_rule', acknowledged: false }, 10, 0)).total).toBe(0);
        await expect(alerts.acknowledge(newId(), 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      }));
    });

    describe('MFA', () => {
      it('setup → verify → login codes accepted once; recovery codes once', () => track(async () => {
        const userId = newId();
        await t.db.query(`INSERT INTO users (user_id, username, password_hash, role) VALUES ($1, $2, 'x', 'admin')`, [userId, `mfa-${userId.slice(-6)}`]);
        const clock = new ManualClock(Date.UTC(2030, 0, 1));
        const mfa = new MfaService(t.db, new FieldCipher(ring), { clock });
        const s = await mfa.setup(userId);
        expect(s.otpauth_url).toMatch(/^otpauth:\/\/totp\//);
        expect(s.recovery_codes).toHaveLength(10);
        const stored = await t.db.query<{ mfa_pending_secret: string; recovery_codes: string[] }>('SELECT mfa_pending_secret, recovery_codes FROM users WHERE user_id = $1', [userId]);
        expect(stored.rows[0]!.mfa_pending_secret.startsWith('enc:v1:')).toBe(true);
        expect(stored.rows[0]!.mfa_pending_secret).not.toContain(s.secret);
        expect(stored.rows[0]!.recovery_codes).not.toContain(s.recovery_codes[0]);

        await expect(mfa.verify(userId, '000000')).rejects.toMatchObject({ code: 'INVALID_PARAMETERS' });
        const setupCode = generateTotp(s.secret, clock.now());
        await expect(mfa.verify(userId, setupCode)).resolves.toEqual({ mfa_enabled: true });
        await expect(mfa.setup(userId)).rejects.toMatchObject({ code: 'CONFLICT' });

        const user = { user_id: userId, mfa_enabled: true };
        expect(await mfa.verifier(user, undefined)).toBe(false);
        expect(await mfa.verifier(user, setupCode)).toBe(false); // the setup step was used
        clock.advance(30_000);
        const code = generateTotp(s.secret, clock.now());
        const results = await Promise.all([mfa.verifier(user, code), mfa.verifier(user, code)]);
        expect(results.filter(Boolean)).toHaveLength(1); // concurrent replay: one wins
        expect(await mfa.verifier(user, code)).toBe(false);
        const last = await t.db.query<{ mfa_last_step: number | string }>('SELECT mfa_last_step FROM users WHERE user_id = $1', [userId]);
        expect(Number(last.rows[0]!.mfa_last_step)).toBe(totpStep(clock.now()));

        const rc = s.recovery_codes[3]!;
        expect(await mfa.verifier(user, rc.toLowerCase())).toBe(true);
        expect(await mfa.verifier(user, rc)).toBe(false);
        expect(await mfa.recoveryCodesLeft(userId)).toBe(9);
        expect(await mfa.verifier({ user_id: userId, mfa_enabled: false }, undefined)).toBe(true);
      }));
    });

    describe('enrollment tokens', () => {
      it('grants exactly `uses` registrations, then refuses; refunds; expires', () => track(async () => {
        const clock = new ManualClock();
        const et = new EnrollmentTokens(t.db, { clock });
        const issued = await et.create({ uses: 3, ttl_seconds: 600, role: 'supervisor', created_by: 'user:admin' });
        expect(issued.enrollment_token).toMatch(/^mcp_et_[A-Za-z0-9_-]{43}$/);
        const rows = await t.db.query<{ token_hash: string }>('SELECT token_hash FROM enrollment_tokens WHERE token_id = $1', [issued.token_id]);
        expect(rows.rows[0]!.token_hash).not.toContain(issued.enrollment_token.slice(7));
        const grants = await Promise.allSettled([1, 2, 3, 4, 5].map(() => et.consume(issued.enrollment_token)));
        expect(grants.filter((g) => g.status === 'fulfilled')).toHaveLength(3);
        const ok = grants.find((g) => g.status === 'fulfilled');
        expect(ok?.status === 'fulfilled' && ok.value.role).toBe('supervisor');
        await expect(et.consume(issued.enrollment_token)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
        if (ok?.status === 'fulfilled') await et.refund(ok.value);
        await expect(et.consume(issued.enrollment_token)).resolves.toMatchObject({ uses_left: 0 });

        const short = await et.create({ uses: 5, ttl_seconds: 60 });
        clock.advance(61_000);
        await expect(et.consume(short.enrollment_token)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
        await expect(et.consume('mcp_et_unknown')).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
        await expect(et.create({ uses: 0, ttl_seconds: 60 })).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
        await expect(et.create({ uses: 1001, ttl_seconds: 60 })).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
      }));
    });

    describe('retention', () => {
      it('purges rows past their period with a simulated clock, each purge audited', () => track(async () => {
        const audit = new AuditLog(t.db, { key: ring.auditChainKey });
        const taskIds = [newId(), newId(), newId()];
        const insertTask = (id: string, status: string) => t.db.query(
          `INSERT INTO tasks (task_id, task_type, status, priority, required_capabilities, parameters, data_classification, timeout_seconds, max_retries, completed_at)
           VALUES ($1, 'bias_detection', $2, 5, ARRAY['bias_detection'], 'enc', 'phi', 300, 3, CASE WHEN $2 IN ('completed','cancelled') THEN now() END)`, [id, status]);
        await insertTask(taskIds[0]!, 'completed');
        await insertTask(taskIds[1]!, 'cancelled');
        await insertTask(taskIds[2]!, 'pending');
        await t.db.query(`INSERT INTO task_events (task_id, to_status, attempt) VALUES ($1, 'completed', 1)`, [taskIds[0]]);
        await t.db.query(
          `INSERT INTO agents (agent_id, name, type, capabilities, version, api_key_hash, status, last_seen_at) VALUES ($1, 'gone', 'general', ARRAY['x'], '1.0.0', 'h', 'offline', now())`,
          [`offline-${taskIds[0]!.slice(-6)}`]);
        // A built-in agent whose process is gone goes like any other; one whose process runs stays.
        for (const status of ['offline', 'active']) {
          await t.db.query(
            `INSERT INTO agents (agent_id, name, type, capabilities, version, api_key_hash, status, last_seen_at, builtin) VALUES ($1, 'builtin', 'pipeline-worker', ARRAY['x'], '1.0.0', 'h', $2, now(), true)`,
            [`builtin-${status}-${taskIds[0]!.slice(-6)}`, status]);
        }

        const clock = new ManualClock(Date.now() + 89 * DAY);
        const job = new RetentionJob(t.db, audit, { clock, batchSize: 1 });
        const early = await job.run();
        expect(early.find((r) => r.name === 'tasks')?.purged).toBe(0);
        expect(early.find((r) => r.name === 'offline_agents')?.purged).toBe(0);

        clock.advance(2 * DAY); // 91 days later
        const res = await job.run();
        const by = Object.fromEntries(res.map((r) => [r.name, r]));
        expect(by.tasks?.purged).toBe(2);
        expect(by.events?.purged).toBeGreaterThanOrEqual(0);
        expect(by.offline_agents?.purged).toBe(2);
        expect((await t.db.query('SELECT agent_id FROM agents WHERE agent_id LIKE $1', [`builtin-%-${taskIds[0]!.slice(-6)}`])).rows).toEqual([{ agent_id: `builtin-active-${taskIds[0]!.slice(-6)}` }]);
        const left = await t.db.query<{ task_id: string }>('SELECT task_id::text AS task_id FROM tasks WHERE task_id = ANY($1::uuid[])', [taskIds]);
        expect(left.rows.map((r) => r.task_id)).toEqual([taskIds[2]]);
        expect((await t.db.query('SELECT 1 FROM task_events WHERE task_id = $1', [taskIds[0]])).rows).toHaveLength(0);
        const purges = await audit.list({ action: 'purge', resource_type: 'tasks' }, { limit: 10, offset: 0, order: 'asc' });
        expect(purges.entries.map((e) => e.resource_id?.split(';')[0])).toEqual(['rows=1', 'rows=1']); // batch size 1
        expect(purges.entries[0]!.actor.type).toBe('system');

        expect((await audit.verify()).ok).toBe(true);
      }));

      it('removes refresh tokens and revocations a day after they expire, and idempotency keys once expired', () => track(async () => {
        const audit = new AuditLog(t.db, { key: ring.auditChainKey });
        const at = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();
        const [oldJti, liveJti, oldRevoked, liveRevoked] = [newId(), newId(), newId(), newId()];
        const refresh = (jti: string, expires: string) => t.db.query(
          `INSERT INTO refresh_tokens (jti, family_id, subject_type, subject_id, expires_at) VALUES ($1, $2, 'user', 'u-retention', $3::timestamptz)`, [jti, newId(), expires]);
        await refresh(oldJti, at(-2 * DAY));
        await refresh(liveJti, at(-DAY / 2)); // expired, but not yet for a day
        await t.db.query('INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2::timestamptz), ($3, $4::timestamptz)', [oldRevoked, at(-2 * DAY), liveRevoked, at(DAY)]);
        const key = (k: string, expires: string) => t.db.query(
          `INSERT INTO idempotency_keys (principal, key, method, path, request_hash, state, expires_at) VALUES ('user:retention', $1, 'POST', '/api/v1/tasks', 'h', 'done', $2::timestamptz)`, [k, expires]);
        await key('expired', at(-60_000));
        await key('live', at(DAY));

        const res = Object.fromEntries((await new RetentionJob(t.db, audit).run()).map((r) => [r.name, r]));
        expect(res.refresh_tokens?.purged).toBe(1);
        expect(res.revoked_tokens?.purged).toBe(1);
        expect(res.idempotency_keys?.purged).toBe(1);
        const ids = async (sql: string) => (await t.db.query<{ id: string }>(sql)).rows.map((r) => r.id);
        expect(await ids(`SELECT jti::text AS id FROM refresh_tokens WHERE subject_id = 'u-retention'`)).toEqual([liveJti]);
        expect(await ids(`SELECT jti::text AS id FROM revoked_tokens WHERE jti IN ('${oldRevoked}', '${liveRevoked}')`)).toEqual([liveRevoked]);
        expect(await ids(`SELECT key AS id FROM idempotency_keys WHERE principal = 'user:retention'`)).toEqual(['live']);
        const purges = await audit.list({ action: 'purge', resource_type: 'refresh_tokens' }, { limit: 10, offset: 0, order: 'asc' });
        expect(purges.entries.map((e) => e.resource_id?.split(';')[0])).toEqual(['rows=1']);
      }));

      it('purges old audit entries at the head of the chain and records the anchor', () => track(async () => {
        // Separate database so the chain starts with old entries.
        const fresh = await engine.open();
        try {
          const past = new ManualClock(Date.now() - 8 * 365 * DAY);
          const oldAudit = new AuditLog(fresh.db, { key: ring.auditChainKey, clock: past });
          const audit = new AuditLog(fresh.db, { key: ring.auditChainKey });
          await oldAudit.append(fresh.db, [entry('ancient-1'), entry('ancient-2'), entry('ancient-3')]);
          await audit.append(fresh.db, [entry('recent-1')]);
          const job = new RetentionJob(fresh.db, audit);
          const res = (await job.run()).find((r) => r.name === 'audit');
          expect(res?.purged).toBe(3);
          const left = await audit.list({}, { limit: 10, offset: 0, order: 'asc' });
          expect(left.entries.map((e) => e.action)).toEqual(['recent-1', 'purge']);
          expect(left.entries[1]!.resource_type).toBe('audit_log');
          expect(left.entries[1]!.resource_id).toMatch(/^rows=3;before=/);
          const v = await audit.verify();
          expect(v).toMatchObject({ ok: true, checked: 2 });
          expect(v.anchor?.hash).toBe(left.entries[0]!.prev_hash);
          // A second run finds nothing more to purge (the recent entries stay).
          expect((await job.run()).find((r) => r.name === 'audit')?.purged).toBe(0);
          await fresh.dispose();
        } catch (e) {
          await fresh.dispose(true);
          throw e;
        }
      }));
    });
  });
}

// Concurrent transactions need a server (PGlite runs one transaction at a time).
for (const engine of engines().filter((e) => e.name === 'postgres')) {
  describe(`audit appends on ${engine.name}`, () => {
    let t: TestDb;
    beforeAll(async () => { t = await engine.open(); });
    afterAll(async () => { await t.dispose(); });

    it('do not wait for each other: an open audited transaction does not hold up another one', async () => {
      const audit = new AuditLog(t.db, { key: ring.auditChainKey });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      let appended!: () => void;
      const first = new Promise<void>((r) => { appended = r; });
      const open = t.db.transaction(async (tx) => {
        await audit.append(tx, [entry('read', { request_id: 'held-open' })]);
        appended();
        await gate;
      });
      await first;
      const other = t.db.transaction((tx) => audit.append(tx, [entry('update', { request_id: 'not-held' })]));
      const outcome = await Promise.race([other.then(() => 'committed'), new Promise((r) => setTimeout(() => r('blocked'), 3000))]);
      release();
      await open;
      expect(outcome).toBe('committed');
      const entries = (await audit.list({}, { limit: 10, offset: 0, order: 'asc' })).entries;
      expect(entries.map((e) => e.request_id).sort()).toEqual(['held-open', 'not-held']);
      expect((await audit.verify()).ok).toBe(true);
    });
  });
}
