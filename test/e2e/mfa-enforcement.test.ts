/**
 * MFA required per role (SPEC §4.1, MCP_MFA_REQUIRED_ROLES / MCP_MFA_GRACE_PERIOD) over real HTTP
 * and Socket.IO, on every reachable engine: a user of a required role without MFA works through
 * the grace period that starts at their first sign-in; after it, only enrolment, /auth/me and
 * logout answer them until they enrol; a fresh install with no grace still lets its first admin
 * reach enrolment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, type TestDb } from '../helpers/stores.ts';
import { connectSocket, emitAck, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';
import { generateTotp } from '../../src/security/index.ts';

const PASSWORD = 'password-for-tests-1';
const GRACE_S = 3600;
const uniq = (p: string) => `${p}-${Math.random().toString(36).slice(2, 8)}`;

interface Login { access_token: string; refresh_token: string; user: { user_id: string; mfa_setup_required: boolean; mfa_setup_deadline: string | null } }

for (const engine of engines()) {
  describe(`MFA enrolment required per role on ${engine.name}`, () => {
    let t: TestServer;
    let store: TestDb;
    let passed = true;
    const track = async (fn: () => Promise<void>) => { try { await fn(); } catch (e) { passed = false; throw e; } };

    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ 'agents.builtin': false, 'auth.mfa_required_roles': ['supervisor'], 'auth.mfa_grace_period': GRACE_S }, { db: store.db });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose(!passed);
    });

    const createUser = async (role: string) => {
      const username = uniq(role);
      const r = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password: PASSWORD, role } });
      expect(r.status).toBe(201);
      return { username, userId: r.body.user_id as string };
    };
    const login = async (username: string, totp_code?: string) => {
      const r = await t.api<Login>('POST', '/api/v1/auth/login', { body: { username, password: PASSWORD, ...(totp_code ? { totp_code } : {}) } });
      expect(r.status).toBe(200);
      return r.body;
    };
    const graceStart = async (userId: string) =>
      (await store.db.query<{ s: Date | null }>('SELECT mfa_grace_started_at AS s FROM users WHERE user_id = $1', [userId])).rows[0]!.s;
    /** Moves the user's grace period two hours into the past (as if it had run out). */
    const expireGrace = (userId: string) =>
      store.db.query(`UPDATE users SET mfa_grace_started_at = now() - interval '2 hours' WHERE user_id = $1`, [userId]);
    const tasksStatus = async (token: string) => (await t.api('GET', '/api/v1/tasks', { token })).status;

    it('works through the grace period; after it only enrolment, /auth/me and logout answer until the user enrols', () => track(async () => {
      const { username, userId } = await createUser('supervisor');
      const before = Date.now();
      const first = await login(username);
      expect(first.user.mfa_setup_required).toBe(true);
      const deadline = Date.parse(first.user.mfa_setup_deadline!);
      expect(deadline).toBeGreaterThanOrEqual(before + GRACE_S * 1000 - 1000);
      expect(deadline).toBeLessThanOrEqual(Date.now() + GRACE_S * 1000 + 1000);
      const token = first.access_token;
      expect(await tasksStatus(token)).toBe(200);
      const early = await connectSocket(t.wsUrl, token); // connected while within the grace period
      // A later login does not move the deadline.
      expect((await login(username)).user.mfa_setup_deadline).toBe(first.user.mfa_setup_deadline);

      await expireGrace(userId);
      await waitFor(async () => (await tasksStatus(token)) === 401);
      const refused = await t.api('GET', '/api/v1/tasks', { token });
      expect(refused.body.error).toMatchObject({ code: 'MFA_REQUIRED', details: { mfa_setup_required: true } });
      const create = await t.api('POST', '/api/v1/tasks', { token, body: { task_type: 'x', required_capabilities: ['x'], parameters: {} } });
      expect(create.status).toBe(401);
      expect(create.body.error.code).toBe('MFA_REQUIRED');
      // Routes that check their permission in the handler are held back too.
      expect((await t.api('POST', '/api/v1/agents/some-agent/drain', { token, body: {} })).body.error.code).toBe('MFA_REQUIRED');
      const socket = await connectSocket(t.wsUrl, token).catch((e: Error) => e);
      expect((socket as Error).message).toBe('MFA_REQUIRED');
      // A socket connected before the deadline is not extended with a fresh token.
      const fresh = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: first.refresh_token } });
      expect(fresh.status).toBe(200); // refresh stays open: the user needs tokens to enrol
      expect(await emitAck(early, 'auth:refresh', { token: fresh.body.access_token })).toMatchObject({ ok: false, error: { code: 'MFA_REQUIRED' } });
      early.close();
      // /health answers the summary only, as to an anonymous caller.
      const health = await t.api('GET', '/api/v1/health', { token });
      expect(health.status).toBe(200);
      expect(health.body.checks).toBeUndefined();
      expect((await t.api('GET', '/api/v1/health', { token: t.adminToken })).body.checks).toBeDefined();
      const me = await t.api('GET', '/api/v1/auth/me', { token });
      expect(me.status).toBe(200);
      expect(me.body.user).toMatchObject({ user_id: userId, mfa_enabled: false });

      const audited = await t.api('GET', `/api/v1/audit?actor=${userId}&action=authentication_failed&limit=100`, { token: t.adminToken });
      expect(audited.body.entries.length).toBeGreaterThanOrEqual(3);
      expect(audited.body.entries.every((e: { fields: string[] }) => e.fields[0] === 'MFA_REQUIRED')).toBe(true);
      // Audited, but not counted as probing: no authorization-failure burst for this user.
      const alerts = await t.api('GET', '/api/v1/security/alerts?rule=authorization_failure_burst&limit=1000', { token: t.adminToken });
      expect(JSON.stringify(alerts.body.alerts)).not.toContain(userId);

      const setup = await t.api('POST', '/api/v1/auth/mfa/setup', { token });
      expect(setup.status).toBe(200);
      const now = Date.now();
      expect((await t.api('POST', '/api/v1/auth/mfa/verify', { token, body: { code: generateTotp(setup.body.secret as string, now) } })).status).toBe(200);
      // Enrolled: the same token works at once (not after the cached state expires).
      expect(await tasksStatus(token)).toBe(200);
      const connected = await connectSocket(t.wsUrl, token);
      connected.close();
      const again = await t.api('POST', '/api/v1/auth/login', { body: { username, password: PASSWORD } });
      expect(again.body.error.code).toBe('MFA_REQUIRED'); // MFA is on: a login needs a code now
      const withCode = await login(username, generateTotp(setup.body.secret as string, now + 30_000));
      expect(withCode.user).toMatchObject({ mfa_setup_required: false, mfa_setup_deadline: null });

      // Logout stays open to an overdue user.
      const other = await createUser('supervisor');
      const out = await login(other.username);
      await expireGrace(other.userId);
      await waitFor(async () => (await tasksStatus(out.access_token)) === 401);
      expect((await t.api('POST', '/api/v1/auth/logout', { token: out.access_token, body: { refresh_token: out.refresh_token } })).status).toBe(204);
    }));

    it('the grace period starts at the first login or refresh, afresh on a role change; other roles are never held', () => track(async () => {
      const worker = await createUser('worker');
      const w = await login(worker.username);
      expect(w.user).toMatchObject({ mfa_setup_required: false, mfa_setup_deadline: null });
      expect(await graceStart(worker.userId)).toBeNull();

      // A session from before the requirement (no grace start): its refresh starts the grace period.
      const sup = await createUser('supervisor');
      const s = await login(sup.username);
      await store.db.query('UPDATE users SET mfa_grace_started_at = NULL WHERE user_id = $1', [sup.userId]);
      const refreshed = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: s.refresh_token } });
      expect(refreshed.status).toBe(200);
      expect(await graceStart(sup.userId)).not.toBeNull();

      // Overdue, then moved to a role outside the policy: works again.
      await expireGrace(sup.userId);
      const token = refreshed.body.access_token as string;
      await waitFor(async () => (await tasksStatus(token)) === 401);
      expect((await t.api('PATCH', `/api/v1/users/${sup.userId}`, { token: t.adminToken, body: { role: 'worker' } })).status).toBe(200);
      await waitFor(async () => (await tasksStatus(token)) === 200);
      expect(await graceStart(sup.userId)).toBeNull();
      // Back to supervisor: a fresh grace period from the next sign-in, not the old, expired one.
      expect((await t.api('PATCH', `/api/v1/users/${sup.userId}`, { token: t.adminToken, body: { role: 'supervisor' } })).status).toBe(200);
      const fresh = await login(sup.username);
      expect(Date.parse(fresh.user.mfa_setup_deadline!)).toBeGreaterThan(Date.now() + GRACE_S * 1000 - 60_000);
      expect(await tasksStatus(fresh.access_token)).toBe(200);
    }));
  });
}

describe('MFA required with no grace period on a fresh install', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'auth.mfa_grace_period': 0 }); // required roles: the default, admin
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('the first admin logs in, can only enrol, and works once enrolled', async () => {
    const users = await t.api('GET', '/api/v1/users', { token: t.adminToken });
    expect(users.status).toBe(401);
    expect(users.body.error.code).toBe('MFA_REQUIRED');
    const setup = await t.api('POST', '/api/v1/auth/mfa/setup', { token: t.adminToken });
    expect(setup.status).toBe(200);
    const verify = await t.api('POST', '/api/v1/auth/mfa/verify', { token: t.adminToken, body: { code: generateTotp(setup.body.secret as string, Date.now()) } });
    expect(verify.body).toEqual({ mfa_enabled: true });
    const after = await t.api('GET', '/api/v1/users', { token: t.adminToken });
    expect(after.status).toBe(200);
    expect(after.body.users.map((u: { username: string; mfa_enabled: boolean }) => [u.username, u.mfa_enabled])).toEqual([['admin', true]]);
  });
});

describe('a socket connected within the MFA grace period', () => {
  const GRACE = 3; // seconds
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'auth.mfa_required_roles': ['supervisor'], 'auth.mfa_grace_period': GRACE });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const signIn = async () => {
    const username = uniq('supervisor');
    expect((await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password: PASSWORD, role: 'supervisor' } })).status).toBe(201);
    const r = await t.api<Login>('POST', '/api/v1/auth/login', { body: { username, password: PASSWORD } });
    expect(r.body.user.mfa_setup_required).toBe(true);
    return r.body;
  };
  const watch = (socket: Awaited<ReturnType<typeof connectSocket>>) => {
    const seen: { errors: string[]; disconnected: boolean } = { errors: [], disconnected: false };
    socket.on('error', (e: { code: string }) => seen.errors.push(e.code));
    socket.on('disconnect', () => { seen.disconnected = true; });
    return seen;
  };

  it('is closed with MFA_REQUIRED when the grace period ends, not when its token expires', async () => {
    const user = await signIn();
    const socket = await connectSocket(t.wsUrl, user.access_token);
    const seen = watch(socket);
    expect(await emitAck(socket, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: true });
    await waitFor(() => seen.disconnected, GRACE * 1000 + 5000);
    expect(seen.errors).toEqual(['MFA_REQUIRED']);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(user.user.mfa_setup_deadline!));
    socket.close();
  });

  it('stays open past the deadline when the user enrolled in time', async () => {
    const user = await signIn();
    const socket = await connectSocket(t.wsUrl, user.access_token);
    const seen = watch(socket);
    const setup = await t.api('POST', '/api/v1/auth/mfa/setup', { token: user.access_token });
    expect((await t.api('POST', '/api/v1/auth/mfa/verify', { token: user.access_token, body: { code: generateTotp(setup.body.secret as string, Date.now()) } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(user.user.mfa_setup_deadline!) - Date.now()) + 1000));
    expect(seen).toEqual({ errors: [], disconnected: false });
    expect(await emitAck(socket, 'subscribe', { topic: 'tasks' })).toMatchObject({ ok: true });
    socket.close();
  });
});
