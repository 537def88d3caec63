/**
 * The last enabled admin cannot be demoted, disabled or deleted (409 CONFLICT): nothing would
 * bring an admin back — the first-start admin is created only in an empty users table and user
 * management needs an admin. With two admins, one may go; two demoting each other at once: one wins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

const PASSWORD = 'password-for-tests-1';

for (const engine of engines()) {
  describe(`the last admin stays on ${engine.name}`, () => {
    let t: TestServer;
    let store: TestDb;
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ 'agents.builtin': false, 'limits.default_per_min': 100000 }, { db: store.db });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose();
    });

    const me = async (token: string) => (await t.api('GET', '/api/v1/auth/me', { token })).body.user as { user_id: string; role: string };
    const users = async (token = t.adminToken) => ((await t.api('GET', '/api/v1/users?limit=1000', { token })).body.users as Array<{ username: string; role: string; disabled: boolean }>);
    const newAdmin = async (username: string) => {
      const r = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username, password: PASSWORD, role: 'admin' } });
      expect(r.status).toBe(201);
      const login = await t.api('POST', '/api/v1/auth/login', { body: { username, password: PASSWORD } });
      return { id: r.body.user_id as string, token: login.body.access_token as string };
    };

    it('refuses to demote, disable or delete the only enabled admin, and changes nothing', async () => {
      const { user_id } = await me(t.adminToken);
      for (const [method, body] of [['PATCH', { role: 'worker' }], ['PATCH', { disabled: true }], ['DELETE', undefined]] as const) {
        const r = await t.api(method, `/api/v1/users/${user_id}`, { token: t.adminToken, body });
        expect(r.status, `${method} ${JSON.stringify(body)}`).toBe(409);
        expect(r.body.error.code).toBe('CONFLICT');
      }
      expect((await users()).find((u) => u.username === 'admin')).toMatchObject({ role: 'admin', disabled: false });
      // Still an admin: user management answers.
      expect((await t.api('GET', '/api/v1/users', { token: t.adminToken })).status).toBe(200);
      // Changes that keep it an admin are fine.
      expect((await t.api('PATCH', `/api/v1/users/${user_id}`, { token: t.adminToken, body: { role: 'admin' } })).status).toBe(200);
    });

    it('with a second enabled admin one may be demoted; two demoting each other at once: exactly one succeeds', async () => {
      const a = await newAdmin('second-admin');
      const b = await newAdmin('third-admin');
      const { user_id: first } = await me(t.adminToken);
      expect((await t.api('PATCH', `/api/v1/users/${first}`, { token: b.token, body: { role: 'supervisor' } })).status).toBe(200);
      const answers = await Promise.all([
        t.api('PATCH', `/api/v1/users/${b.id}`, { token: a.token, body: { disabled: true } }),
        t.api('PATCH', `/api/v1/users/${a.id}`, { token: b.token, body: { role: 'worker' } }),
      ]);
      const statuses = answers.map((r) => r.status).sort();
      // The loser is refused either as the last admin (409) or because its own demotion already took its admin rights (403).
      expect(statuses[0]).toBe(200);
      expect([403, 409]).toContain(statuses[1]);
      const survivor = answers[0].status === 200 ? a : b; // the first call is a disabling b
      const admins = (await users(survivor.token)).filter((u) => u.role === 'admin' && !u.disabled);
      expect(admins.map((u) => u.username)).toEqual([survivor === a ? 'second-admin' : 'third-admin']);
    });
  });
}
