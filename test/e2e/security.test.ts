/**
 * Security end to end over real HTTP, on every reachable engine: the audit log and its routes,
 * authentication events and denials audited, breach rules raising stored alerts (and the
 * webhook), MFA enrolment and login with replay protection, enrollment tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { engines, type TestDb } from '../helpers/stores.ts';
import { ADMIN_PASSWORD, connectSocket, emitAck, registerAgent, startTestServer, userToken, waitFor, type TestServer } from '../helpers/server.ts';
import { generateTotp } from '../../src/security/index.ts';

interface AuditRow {
  audit_id: string; seq: number; action: string; outcome: string; resource_type: string; resource_id: string | null; fields: string[];
  actor: { type: string; id: string | null; role: string | null; ip: string | null }; request_id: string | null; risk_level: string; hash: string; prev_hash: string;
}
interface AlertRow { alert_id: string; rule: string; severity: string; message: string; principal: string | null; details: Record<string, unknown> }

const uniq = (p: string) => `${p}-${Math.random().toString(36).slice(2, 8)}`;

for (const engine of engines()) {
  describe(`security over HTTP on ${engine.name}`, () => {
    let t: TestServer;
    let store: TestDb;
    let hook: Server;
    const webhookBodies: Record<string, unknown>[] = [];
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      hook = createServer((req, res) => {
        let data = '';
        req.on('data', (c: Buffer) => { data += c.toString('utf8'); });
        req.on('end', () => { webhookBodies.push(JSON.parse(data) as Record<string, unknown>); res.writeHead(204).end(); });
      });
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
      store = await engine.open();
      t = await startTestServer({ 'agents.builtin': false, 'security.webhook_url': `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts` }, { db: store.db });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose(!passed);
      await new Promise((r) => hook?.close(r));
    });

    const auditOf = async (query: string) => {
      const r = await t.api('GET', `/api/v1/audit?${query}`, { token: t.adminToken });
      expect(r.status).toBe(200);
      return r.body as { entries: AuditRow[]; pagination: Record<string, unknown> };
    };
    const alertsOf = async (rule: string) => (await t.api('GET', `/api/v1/security/alerts?rule=${rule}&limit=1000`, { token: t.adminToken })).body.alerts as AlertRow[];

    it('audits the real-time channel\'s refusals like HTTP\'s: a refused handshake, refused subscriptions (and counts them towards the breach rule)', () => track(async () => {
      const bad = await connectSocket(t.wsUrl, 'Bearer not-a-token').catch((e: Error) => e);
      expect((bad as Error).message).toBe('INVALID_TOKEN');
      await waitFor(async () => (await auditOf('action=authentication_failed&resource_type=socket_event&limit=5')).entries.length >= 1);
      expect((await auditOf('action=authentication_failed&resource_type=socket_event&limit=1')).entries[0]).toMatchObject({
        actor: { type: 'anonymous' }, resource_id: 'connect', fields: ['INVALID_TOKEN'], outcome: 'denied',
      });
      const agent = await registerAgent(t, { agent_id: `socket-denied-${engine.name}` });
      const socket = await connectSocket(t.wsUrl, agent.access_token);
      try {
        for (let i = 0; i < 20; i++) {
          expect(await emitAck(socket, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: false, error: { code: 'INSUFFICIENT_PERMISSIONS' } });
        }
        const mine = `actor=${agent.agent_id}&action=access_denied&resource_type=socket_event&limit=100`;
        await waitFor(async () => (await auditOf(mine)).entries.length >= 20);
        expect((await auditOf(mine)).entries[0]).toMatchObject({ actor: { type: 'agent', id: agent.agent_id }, resource_id: 'subscribe', fields: ['INSUFFICIENT_PERMISSIONS'] });
        await waitFor(async () => (await alertsOf('authorization_failure_burst')).some((a) => JSON.stringify(a).includes(agent.agent_id)));
      } finally {
        socket.close();
      }
    }));

    it('audit and alert routes need audit:read / security:alerts: worker and supervisor get 403, and the denial is audited', () => track(async () => {
      for (const role of ['worker', 'supervisor']) {
        const token = await userToken(t, role);
        for (const [method, path] of [['GET', '/api/v1/audit'], ['GET', '/api/v1/audit/verify'], ['GET', '/api/v1/security/alerts'], ['POST', '/api/v1/security/alerts/00000000-0000-0000-0000-000000000000/ack']] as const) {
          const r = await t.api(method, path, { token });
          expect(r.status, `${role} ${method} ${path}`).toBe(403);
          expect(r.body.error.code).toBe('INSUFFICIENT_PERMISSIONS');
        }
      }
      const denied = await auditOf('action=access_denied&limit=100');
      expect(denied.entries.length).toBeGreaterThanOrEqual(8);
      expect(denied.entries[0]).toMatchObject({ outcome: 'denied', resource_type: 'endpoint', fields: ['INSUFFICIENT_PERMISSIONS'] });
      expect(['worker', 'supervisor']).toContain(denied.entries[0]!.actor.role);
      expect(denied.entries.map((e) => e.resource_id)).toContain('GET /api/v1/audit');
      const anon = await t.api('GET', '/api/v1/audit');
      expect(anon.status).toBe(401);
      expect((await auditOf('action=authentication_failed&limit=1')).entries[0]).toMatchObject({ actor: { type: 'anonymous' }, fields: ['MISSING_AUTHENTICATION'] });

      const ok = await t.api('GET', '/api/v1/audit?limit=2&offset=1&sort=timestamp:asc', { token: t.adminToken });
      expect(ok.status).toBe(200);
      expect(ok.body.pagination).toMatchObject({ limit: 2, offset: 1, has_more: true, next_offset: 3 });
      expect(ok.body.entries[1].prev_hash).toBe(ok.body.entries[0].hash);
      expect((await t.api('GET', '/api/v1/audit?bogus=1', { token: t.adminToken })).status).toBe(400);
      expect((await t.api('GET', '/api/v1/security/alerts', { token: t.adminToken })).status).toBe(200);
    }));

    it('audits login success and failure, refresh, logout and agent token exchange', () => track(async () => {
      const bad = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'wrong-password-xyz' } });
      expect(bad.status).toBe(401);
      const good = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      expect(good.status).toBe(200);
      const adminId = good.body.user.user_id as string;
      const refreshed = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: good.body.refresh_token } });
      expect(refreshed.status).toBe(200);
      expect((await t.api('POST', '/api/v1/auth/logout', { token: refreshed.body.access_token, body: { refresh_token: refreshed.body.refresh_token } })).status).toBe(204);
      const agent = await registerAgent(t);
      expect((await t.api('POST', '/api/v1/auth/token', { body: { agent_id: agent.agent_id, api_key: agent.api_key } })).status).toBe(200);
      expect((await t.api('POST', '/api/v1/auth/token', { body: { agent_id: agent.agent_id, api_key: 'mcp_ak_wrong' } })).status).toBe(401);

      const failed = (await auditOf('action=login_failed&resource_id=admin&limit=1')).entries[0]!;
      expect(failed).toMatchObject({ outcome: 'failure', resource_type: 'user', fields: ['INVALID_CREDENTIALS'], actor: { type: 'anonymous', ip: '127.0.0.1' } });
      expect(failed.request_id).toBe(bad.headers.get('x-request-id'));
      expect((await auditOf(`action=login&actor=${adminId}&limit=1`)).entries[0]).toMatchObject({ outcome: 'success', resource_id: adminId, actor: { type: 'user', role: 'admin' } });
      expect((await auditOf(`action=token_refresh&actor=${adminId}&limit=1`)).entries[0]).toMatchObject({ outcome: 'success' });
      expect((await auditOf(`action=logout&actor=${adminId}&limit=1`)).entries).toHaveLength(1);
      const exchanges = (await auditOf(`action=token_exchange&resource_id=${agent.agent_id}&sort=timestamp:asc`)).entries;
      expect(exchanges.map((e) => e.outcome)).toEqual(['success', 'failure']);
      expect(exchanges[0]!.actor).toMatchObject({ type: 'agent', id: agent.agent_id });

      const v = await t.api('GET', '/api/v1/audit/verify', { token: t.adminToken });
      expect(v.body).toMatchObject({ ok: true });
      expect(v.body.checked).toBeGreaterThan(5);
    }));

    it('a request whose audit entry cannot be written fails', () => track(async () => {
      await store.db.exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$;
        CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION refuse_audit();`);
      try {
        const r = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
        expect(r.status).toBe(500);
        expect(r.body.access_token).toBeUndefined();
      } finally {
        await store.db.exec('DROP TRIGGER refuse_audit ON audit_pending; DROP FUNCTION refuse_audit();');
      }
    }));

    it('a REST claim whose delivery audit cannot be written fails (503), its parameters not sent', () => track(async () => {
      const agent = await registerAgent(t, { agent_id: `claim-audit-${engine.name}`, capabilities: [`cap_claim_audit_${engine.name}`] });
      const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'claim_audit', required_capabilities: [`cap_claim_audit_${engine.name}`], parameters: { note: 'phi' } } });
      expect(created.status).toBe(201);
      await store.db.exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down'; END $$;
        CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION refuse_audit();`);
      let claim;
      try {
        claim = await t.api('POST', '/api/v1/tasks/claim', { token: agent.access_token, body: { max: 1, wait_ms: 0 } });
      } finally {
        await store.db.exec('DROP TRIGGER refuse_audit ON audit_pending; DROP FUNCTION refuse_audit();');
      }
      expect(claim.status, claim.text).toBe(503);
      expect(claim.body.error.code).toBe('SERVICE_UNAVAILABLE');
      expect(claim.headers.get('retry-after')).toBe('5');
      expect(claim.text).not.toContain('"note"');
      // The entry stays buffered and is written once the store takes it again.
      await t.server.security.phi.flush();
      const entry = (await auditOf(`actor=${agent.agent_id}&action=read&resource_type=task&limit=5`)).entries[0];
      expect(entry).toMatchObject({ fields: ['parameters'], outcome: 'success' });
      expect(JSON.stringify(entry)).toContain(created.body.task_id as string);
    }));

    it('10 failed logins for one username raise an alert and lock the account; 9 do not', () => track(async () => {
      const username = uniq('locked');
      await userToken(t, 'worker', username);
      for (let i = 0; i < 9; i++) {
        expect((await t.api('POST', '/api/v1/auth/login', { body: { username, password: `wrong-password-${i}` } })).status).toBe(401);
      }
      expect((await alertsOf('failed_login_burst')).filter((a) => a.principal === `user:${username}`)).toHaveLength(0);
      expect((await t.api('POST', '/api/v1/auth/login', { body: { username, password: 'wrong-password-10' } })).status).toBe(401);
      const alerts = (await alertsOf('failed_login_burst')).filter((a) => a.principal === `user:${username}`);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ severity: 'high', details: { scope: 'username', count: 10 } });
      const locked = await t.api('POST', '/api/v1/auth/login', { body: { username, password: 'password-for-tests-1' } });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(800);
      await waitFor(() => webhookBodies.find((b) => b.alert_id === alerts[0]!.alert_id));
      const sent = webhookBodies.find((b) => b.alert_id === alerts[0]!.alert_id)!;
      expect(Object.keys(sent).sort()).toEqual(['alert_id', 'created_at', 'message', 'rule', 'severity', 'source']);
      await t.server.security.detector.unlock(username);
    }));

    it('20 authorization failures in a minute by one principal raise an alert; 19 do not', () => track(async () => {
      const worker = await userToken(t, 'worker');
      const id = (await t.api('GET', '/api/v1/auth/me', { token: worker })).body.user.user_id as string;
      for (let i = 0; i < 19; i++) expect((await t.api('GET', '/api/v1/security/alerts', { token: worker })).status).toBe(403);
      expect((await alertsOf('authorization_failure_burst')).filter((a) => a.principal === `user:${id}`)).toHaveLength(0);
      expect((await t.api('GET', '/api/v1/users', { token: worker })).status).toBe(403);
      const raised = (await alertsOf('authorization_failure_burst')).filter((a) => a.principal === `user:${id}`);
      expect(raised).toHaveLength(1);
      expect(raised[0]!.details).toMatchObject({ count: 20, last_code: 'INSUFFICIENT_PERMISSIONS' });
    }));

    it('stores refresh-token reuse and revoked-agent credential alerts; acknowledges alerts', () => track(async () => {
      const login = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      expect((await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: login.body.refresh_token } })).status).toBe(200);
      const reuse = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: login.body.refresh_token } });
      expect(reuse.body.error.code).toBe('TOKEN_REUSED');
      const reused = await waitFor(async () => (await alertsOf('refresh_token_reuse'))[0]);
      expect(reused.severity).toBe('high');
      expect((await auditOf('action=token_reused&limit=1')).entries[0]).toMatchObject({ outcome: 'failure', risk_level: 'critical', resource_type: 'user' });

      const agent = await registerAgent(t);
      expect((await t.api('DELETE', `/api/v1/agents/${agent.agent_id}`, { token: t.adminToken })).status).toBe(204);
      expect((await t.api('POST', '/api/v1/auth/token', { body: { agent_id: agent.agent_id, api_key: agent.api_key } })).status).toBe(401);
      const revoked = await waitFor(async () => (await alertsOf('revoked_agent_credentials')).find((a) => String(a.message).includes(agent.agent_id)));

      const ack = await t.api('POST', `/api/v1/security/alerts/${revoked.alert_id}/ack`, { token: t.adminToken });
      expect(ack.status).toBe(200);
      expect(ack.body).toMatchObject({ alert_id: revoked.alert_id, acknowledged_by: 'user:admin' });
      const open = (await t.api('GET', '/api/v1/security/alerts?acknowledged=false&limit=1000', { token: t.adminToken })).body.alerts as Array<{ alert_id: string }>;
      expect(open.map((a) => a.alert_id)).not.toContain(revoked.alert_id);
      expect((await t.api('POST', '/api/v1/security/alerts/0190b4a2-0000-7000-8000-000000000000/ack', { token: t.adminToken })).status).toBe(404);
      expect((await auditOf(`resource_type=security_alert&resource_id=${revoked.alert_id}`)).entries[0]).toMatchObject({ action: 'update' });
    }));

    it('GET /audit/verify reports an entry edited behind the triggers, and raises an alert', () => track(async () => {
      const before = await t.api('GET', '/api/v1/audit/verify', { token: t.adminToken });
      expect(before.body.ok).toBe(true);
      const victim = (await auditOf('action=login&limit=1')).entries[0]!;
      await store.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
      await store.db.query(`UPDATE audit_log SET outcome = 'failure' WHERE audit_id = $1`, [victim.audit_id]);
      await store.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
      try {
        const after = await t.api('GET', '/api/v1/audit/verify', { token: t.adminToken });
        expect(after.status).toBe(200);
        expect(after.body).toMatchObject({ ok: false, first_broken: { audit_id: victim.audit_id, seq: victim.seq, reason: 'hash_mismatch' } });
        const alert = (await alertsOf('audit_chain_broken'))[0]!;
        expect(alert).toMatchObject({ severity: 'critical', details: { audit_id: victim.audit_id } });
        await expect(store.db.query('DELETE FROM audit_log WHERE audit_id = $1', [victim.audit_id])).rejects.toThrow(/append-only/);
      } finally {
        await store.db.exec('ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update');
        await store.db.query(`UPDATE audit_log SET outcome = 'success' WHERE audit_id = $1`, [victim.audit_id]);
        await store.db.exec('ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update');
      }
      expect((await t.api('GET', '/api/v1/audit/verify', { token: t.adminToken })).body.ok).toBe(true);
    }));

    it('MFA: setup, verify, then login needs a fresh TOTP code (never the same twice) or a recovery code (once)', () => track(async () => {
      const username = uniq('mfa-admin');
      const password = 'password-for-tests-1';
      expect((await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password, role: 'admin' } })).status).toBe(201);
      const first = await t.api('POST', '/api/v1/auth/login', { body: { username, password } });
      expect(first.status).toBe(200);
      expect(first.body.user).toMatchObject({ mfa_enabled: false, mfa_setup_required: true });
      const token = first.body.access_token as string;

      const setup = await t.api('POST', '/api/v1/auth/mfa/setup', { token });
      expect(setup.status).toBe(200);
      const { secret, otpauth_url, recovery_codes } = setup.body as { secret: string; otpauth_url: string; recovery_codes: string[] };
      expect(otpauth_url).toContain(`secret=${secret}`);
      expect(recovery_codes).toHaveLength(10);
      expect((await t.api('POST', '/api/v1/auth/mfa/verify', { token, body: { code: '123456' } })).status).toBe(400);
      const now = Date.now();
      expect((await t.api('POST', '/api/v1/auth/mfa/verify', { token, body: { code: generateTotp(secret, now) } })).body).toEqual({ mfa_enabled: true });

      const noCode = await t.api('POST', '/api/v1/auth/login', { body: { username, password } });
      expect(noCode.status).toBe(401);
      expect(noCode.body.error.code).toBe('MFA_REQUIRED');
      // The step used for enrolment is spent; the next step's code (within the ±1 window) works once.
      expect((await t.api('POST', '/api/v1/auth/login', { body: { username, password, totp_code: generateTotp(secret, now) } })).status).toBe(401);
      const next = generateTotp(secret, now + 30_000);
      const withCode = await t.api('POST', '/api/v1/auth/login', { body: { username, password, totp_code: next } });
      expect(withCode.status).toBe(200);
      expect(withCode.body.user).toMatchObject({ mfa_enabled: true, mfa_setup_required: false });
      const replay = await t.api('POST', '/api/v1/auth/login', { body: { username, password, totp_code: next } });
      expect(replay.status).toBe(401);
      expect(replay.body.error.code).toBe('MFA_REQUIRED');

      expect((await t.api('POST', '/api/v1/auth/login', { body: { username, password, totp_code: recovery_codes[0] } })).status).toBe(200);
      expect((await t.api('POST', '/api/v1/auth/login', { body: { username, password, totp_code: recovery_codes[0] } })).status).toBe(401);
      const audited = (await auditOf(`resource_id=${(withCode.body.user as { user_id: string }).user_id}&resource_type=user&sort=timestamp:asc&limit=100`)).entries.map((e) => e.action);
      expect(audited).toEqual(expect.arrayContaining(['mfa_setup', 'mfa_verify', 'login']));
      const mfaFailures = (await auditOf(`action=login_failed&resource_id=${username}&limit=100`)).entries;
      expect(mfaFailures.every((e) => e.fields[0] === 'MFA_REQUIRED')).toBe(true);
      expect(mfaFailures).toHaveLength(4);

      const agent = await registerAgent(t);
      expect((await t.api('POST', '/api/v1/auth/mfa/setup', { token: agent.access_token })).status).toBe(403);
    }));

    it('enrollment tokens register agents with the token role until used up; only agent:register may create them', () => track(async () => {
      const supervisor = await userToken(t, 'supervisor');
      expect((await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: supervisor, body: { uses: 1, ttl_seconds: 60 } })).status).toBe(403);
      // (Another admin: refused requests count against the caller's rate limit, and the tests
      // below need the first admin's `register` budget.)
      const otherAdmin = await userToken(t, 'admin');
      expect((await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: otherAdmin, body: { uses: 0, ttl_seconds: 60 } })).status).toBe(400);
      expect((await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: otherAdmin, body: { uses: 1001, ttl_seconds: 60 } })).status).toBe(400);
      const created = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: t.adminToken, body: { uses: 2, ttl_seconds: 600 } });
      expect(created.status).toBe(201);
      const et = created.body.enrollment_token as string;
      expect(et).toMatch(/^mcp_et_/);
      expect(Date.parse(created.body.expires_at)).toBeGreaterThan(Date.now() + 590_000);

      const body = (n: number) => ({ name: `enrolled ${n}`, type: 'general', capabilities: ['text_processing'], version: '1.0.0' });
      const wrongRole = await t.api('POST', '/api/v1/agents/register', { token: et, body: { ...body(0), role: 'admin' } });
      expect(wrongRole.status).toBe(403);
      const taken = (await registerAgent(t)).agent_id;
      expect((await t.api('POST', '/api/v1/agents/register', { token: et, body: { ...body(0), agent_id: taken } })).status).toBe(409);

      const a1 = await t.api('POST', '/api/v1/agents/register', { token: et, body: body(1) });
      expect(a1.status).toBe(201);
      expect(a1.body.permissions).not.toContain('agent:register');
      const a2 = await t.api('POST', '/api/v1/agents/register', { token: et, body: body(2) });
      expect(a2.status).toBe(201);
      const a3 = await t.api('POST', '/api/v1/agents/register', { token: et, body: body(3) });
      expect(a3.status).toBe(401);
      expect(a3.body.error.code).toBe('INVALID_TOKEN');

      const detail = await t.api('GET', `/api/v1/agents/${a1.body.agent_id}`, { token: t.adminToken });
      expect(detail.body.role).toBe('worker');
      expect((await t.api('POST', '/api/v1/auth/token', { body: { agent_id: a1.body.agent_id, api_key: a1.body.api_key } })).status).toBe(200);
      // The token only registers: it is no bearer for anything else.
      expect((await t.api('GET', '/api/v1/agents', { token: et })).status).toBe(401);
      expect((await auditOf(`action=enrollment_token_use&resource_id=${created.body.token_id}`)).pagination.total).toBe(4);

      const sup = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: t.adminToken, body: { uses: 1, ttl_seconds: 60, role: 'supervisor' } });
      const a4 = await t.api('POST', '/api/v1/agents/register', { token: sup.body.enrollment_token, body: { ...body(4), role: 'supervisor' } });
      expect(a4.status).toBe(201);
      expect(a4.body.permissions).toContain('task:create');
    }));

    const enrollBody = (name: string) => ({ name, type: 'general', capabilities: ['text_processing'], version: '1.0.0' });
    const newEnrollmentToken = async (uses: number) => {
      const r = await t.api('POST', '/api/v1/agents/enrollment-tokens', { token: t.adminToken, body: { uses, ttl_seconds: 600 } });
      expect(r.status).toBe(201);
      return { et: r.body.enrollment_token as string, id: r.body.token_id as string };
    };
    const usesLeft = async (id: string) => (await store.db.query<{ uses_left: number }>('SELECT uses_left FROM enrollment_tokens WHERE token_id = $1', [id])).rows[0]!.uses_left;
    const enroll = (et: string, key: string | null, body: Record<string, unknown>) => t.api('POST', '/api/v1/agents/register', { token: et, body, headers: key ? { 'idempotency-key': key } : {} });

    it('a single-use enrollment token: a 400 takes no use; an Idempotency-Key replay returns the original 201; another key is refused (the use is spent)', () => track(async () => {
      const { et, id } = await newEnrollmentToken(1);
      const body = enrollBody('single-use');
      // A body that fails validation takes no use, and is not stored under its key.
      const invalid = await enroll(et, 'once-k1', { ...body, capabilities: 'not a list' });
      expect([invalid.status, invalid.body.error.code]).toEqual([400, 'VALIDATION_ERROR']);
      expect(invalid.headers.get('x-ratelimit-limit')).not.toBeNull();
      expect(await usesLeft(id)).toBe(1);
      const first = await enroll(et, 'once-k1', body);
      expect(first.status).toBe(201);
      expect(first.body.agent_id).toEqual(expect.any(String));
      expect(await usesLeft(id)).toBe(0);

      const replay = await enroll(et, 'once-k1', body);
      expect(replay.status).toBe(201);
      expect(replay.headers.get('idempotency-replayed')).toBe('true');
      expect(replay.body).toEqual(first.body);

      const other = await enroll(et, 'once-k2', body);
      expect(other.status).toBe(401);
      expect(other.body.error.code).toBe('INVALID_TOKEN');
      const noKey = await enroll(et, null, body);
      expect(noKey.status).toBe(401);
      expect(noKey.body.error.code).toBe('INVALID_TOKEN');
      expect((await auditOf(`action=enrollment_token_use&resource_id=${id}`)).pagination.total).toBe(1);
      expect((await t.api('GET', `/api/v1/agents/${first.body.agent_id}`, { token: t.adminToken })).status).toBe(200);

      // The token is still checked before a replay: unknown or revoked → 401, nothing replayed.
      expect((await enroll(`${et.slice(0, -4)}AAAA`, 'once-k1', body)).status).toBe(401);
      expect((await t.server.security.enrollment.revoke(id))?.status).toBe('revoked');
      const revoked = await enroll(et, 'once-k1', body);
      expect(revoked.status).toBe(401);
      expect(revoked.body.error.code).toBe('INVALID_TOKEN');
      expect(revoked.body.api_key).toBeUndefined();
    }));

    it('enrollment: a request refused by the Idempotency-Key (422, 409 in progress), a replay or the rate limit takes no use', () => track(async () => {
      const { et, id } = await newEnrollmentToken(2);
      const body = enrollBody('keyed');
      const first = await enroll(et, 'k1', body); // rate-limit point 1 of 10 (register class)
      expect(first.status).toBe(201);
      expect(await usesLeft(id)).toBe(1);

      const reused = await enroll(et, 'k1', enrollBody('other body'));
      expect(reused.status).toBe(422);
      expect(reused.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(await usesLeft(id)).toBe(1);

      // Another request with the same body holds key k2 (in flight).
      const principal = `agent:enrollment-${id}`;
      await store.db.query(
        `INSERT INTO idempotency_keys (principal, key, method, path, request_hash, state, expires_at)
         SELECT principal, 'k2', method, path, request_hash, 'in_progress', expires_at FROM idempotency_keys WHERE principal = $1 AND key = 'k1'`, [principal]);
      const busy = await enroll(et, 'k2', body);
      expect(busy.status).toBe(409);
      expect(busy.body.error.code).toBe('IDEMPOTENCY_IN_PROGRESS');
      expect(await usesLeft(id)).toBe(1);

      for (let i = 0; i < 7; i++) {
        const r = await enroll(et, 'k1', body);
        expect(r.status).toBe(201);
        expect(r.body.agent_id).toBe(first.body.agent_id);
      }
      expect(await usesLeft(id)).toBe(1);

      const limited = await enroll(et, 'k3', body); // the 11th request this minute
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe('RATE_LIMIT_EXCEEDED');
      expect(await usesLeft(id)).toBe(1);
      expect((await auditOf(`action=enrollment_token_use&resource_id=${id}`)).pagination.total).toBe(1);
    }));
  });
}
