/** Token security end to end: forgery battery, refresh rotation and reuse, logout, revocation. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { io } from 'socket.io-client';
import { connectSocket, registerAgent, startTestServer, userToken, type TestServer } from '../helpers/server.ts';

function unsigned(claims: Record<string, unknown>, header: Record<string, unknown>): string {
  return `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify(claims))}.`;
}

describe('tokens', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false });
  });
  afterAll(async () => t?.stop());

  const me = (token: string) => t.api('GET', '/api/v1/auth/me', { token });
  const refresh = (refresh_token: string) => t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token } });
  /** Stored `refresh_token_reuse` alerts naming this user (bus alerts are stored in the background: settle first). */
  const reuseAlertsOf = async (username: string) => {
    await t.server.security.alerts.settle();
    const r = await t.api('GET', '/api/v1/security/alerts?rule=refresh_token_reuse&limit=1000', { token: t.adminToken });
    expect(r.status).toBe(200);
    return (r.body.alerts as Array<{ message: string; severity: string }>).filter((a) => a.message.includes(`by user ${username};`));
  };

  it('publishes EdDSA keys with kid at /.well-known/jwks.json and signs with them', async () => {
    const jwks = await t.api('GET', '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    const header = decodeProtectedHeader(t.adminToken);
    expect(header.alg).toBe('EdDSA');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toContain(header.kid);
    const claims = decodeJwt(t.adminToken);
    expect(claims).toMatchObject({ iss: 'mcp-server', aud: 'mcp-api', typ: 'access', role: 'admin' });
    expect(claims.jti).toBeTruthy();
    expect((await me(t.adminToken)).status).toBe(200);
  });

  it('refuses forged tokens on REST and on the socket handshake', async () => {
    const good = decodeJwt(t.adminToken);
    const kid = decodeProtectedHeader(t.adminToken).kid!;
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const sign = (claims: Record<string, unknown>, k = kid) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid: k }).sign(privateKey);
    const jwks = (await t.api('GET', '/.well-known/jwks.json')).body;
    const pub = JSON.stringify(jwks.keys[0]);
    const hs = await new SignJWT({ ...good }).setProtectedHeader({ alg: 'HS256', kid }).sign(new TextEncoder().encode(pub));
    const [h, p] = t.adminToken.split('.');
    const refreshAsAccess = (await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } })).body.refresh_token as string;
    const forged: Record<string, string> = {
      alg_none: unsigned({ ...good }, { alg: 'none', kid }),
      hs256_with_public_key: hs,
      unknown_kid: await sign({ ...good }, 'not-a-kid'),
      wrong_key_known_kid: await sign({ ...good }),
      tampered_payload: `${h}.${base64url.encode(JSON.stringify({ ...good, role: 'system' }))}.${t.adminToken.split('.')[2]}`,
      refresh_as_access: refreshAsAccess,
      garbage: 'not.a.jwt',
    };
    void p;
    for (const [name, token] of Object.entries(forged)) {
      const r = await me(token);
      expect(r.status, name).toBe(401);
      expect(r.body.error.code, name).toBe('INVALID_TOKEN');
      await expect(connectSocket(t.wsUrl, token), name).rejects.toThrow('INVALID_TOKEN');
    }
  });

  it('rejects expired, not-yet-valid, wrong-audience/issuer/typ tokens signed with the real key', async () => {
    const key = t.server.services.signingKeys.current;
    const base = decodeJwt(t.adminToken);
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>) => new SignJWT({ ...base, ...claims }).setProtectedHeader({ alg: 'EdDSA', kid: key.kid }).sign(key.privateKey!);
    expect((await me(await sign({}))).status).toBe(200);
    const expired = await me(await sign({ iat: now - 100, exp: now - 10 }));
    expect(expired.status).toBe(401);
    expect(expired.body.error.code).toBe('TOKEN_EXPIRED');
    for (const claims of [{ aud: 'other-api' }, { iss: 'someone-else' }, { typ: 'refresh' }, { nbf: now + 3600 }, { role: 'emperor' }]) {
      const r = await me(await sign(claims));
      expect(r.status, JSON.stringify(claims)).toBe(401);
    }
    expect((await me('')).body.error.code).toBe('MISSING_AUTHENTICATION');

    // The same battery on the Socket.IO handshake: connect_error carries the code, no socket opens.
    const handshake = async (token: string) => connectSocket(t.wsUrl, token).then((s) => { s.close(); return 'connected'; }, (err: Error) => err.message);
    expect(await handshake(await sign({}))).toBe('connected');
    const refreshAsAccess = (await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } })).body.refresh_token as string;
    const refused: Record<string, [string, string[]]> = {
      expired: [await sign({ iat: now - 100, exp: now - 10 }), ['TOKEN_EXPIRED']],
      wrong_audience: [await sign({ aud: 'other-api' }), ['INVALID_TOKEN']],
      wrong_issuer: [await sign({ iss: 'someone-else' }), ['INVALID_TOKEN']],
      typ_refresh: [await sign({ typ: 'refresh' }), ['INVALID_TOKEN']],
      typ_missing: [await sign({ typ: undefined }), ['INVALID_TOKEN']],
      not_yet_valid: [await sign({ nbf: now + 3600 }), ['INVALID_TOKEN', 'TOKEN_EXPIRED']],
      refresh_as_access: [refreshAsAccess, ['INVALID_TOKEN']],
      bearer_prefixed_refresh: [`Bearer ${refreshAsAccess}`, ['INVALID_TOKEN']],
      empty: ['', ['MISSING_AUTHENTICATION']],
    };
    for (const [name, [token, codes]] of Object.entries(refused)) {
      expect(codes, name).toContain(await handshake(token));
    }
    // the handshake reads the Authorization header too, with the same checks
    const viaHeader = (token: string) => new Promise<string>((resolve) => {
      const s = io(`${t.wsUrl}/mcp/ws`, { extraHeaders: { authorization: `Bearer ${token}` }, transports: ['polling'], reconnection: false, forceNew: true });
      s.once('connect', () => { s.close(); resolve('connected'); });
      s.once('connect_error', (err) => { s.close(); resolve(err.message); });
    });
    expect(await viaHeader(await sign({}))).toBe('connected');
    expect(await viaHeader(await sign({ aud: 'other-api' }))).toBe('INVALID_TOKEN');
    expect(await viaHeader(await sign({ iat: now - 100, exp: now - 10 }))).toBe('TOKEN_EXPIRED');
  });

  it('rotates refresh tokens and revokes the family on reuse', async () => {
    const login = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } });
    const r1 = login.body.refresh_token as string;
    const pair2 = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: r1 } });
    expect(pair2.status).toBe(200);
    const r2 = pair2.body.refresh_token as string;
    expect(r2).not.toBe(r1);
    const alertsBefore = (await reuseAlertsOf('admin')).length;
    const reuse = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: r1 } });
    expect(reuse.status).toBe(401);
    expect(reuse.body.error.code).toBe('TOKEN_REUSED');
    const alerts = await reuseAlertsOf('admin');
    expect(alerts).toHaveLength(alertsBefore + 1);
    expect(alerts[0]!.severity).toBe('high');
    // The session's access tokens (from the login and from the rotation) stop working at once —
    // the thief's too — while the admin's other session goes on.
    for (const token of [login.body.access_token as string, pair2.body.access_token as string]) {
      const after = await me(token);
      expect(after.status).toBe(401);
      expect(after.body.error.code).toBe('INVALID_TOKEN');
    }
    expect((await me(t.adminToken)).status).toBe(200);
    // r2 was revoked with its family but never used: invalid, not a second reuse (no second alert)
    const familyGone = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: r2 } });
    expect(familyGone.status).toBe(401);
    expect(familyGone.body.error.code).toBe('INVALID_TOKEN');
    // r1 stays a used token: presenting it again is reuse again
    expect((await refresh(r1)).body.error.code).toBe('TOKEN_REUSED');
    expect(await reuseAlertsOf('admin')).toHaveLength(alertsBefore + 2);
    const access = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: t.adminToken } });
    expect(access.status).toBe(401);
  });

  it('logout revokes the access token and the refresh family', async () => {
    const login = await t.api('POST', '/api/v1/auth/login', { body: { username: 'admin', password: 'admin-password-123' } });
    const { access_token, refresh_token } = login.body as { access_token: string; refresh_token: string };
    expect((await me(access_token)).status).toBe(200);
    const out = await t.api('POST', '/api/v1/auth/logout', { token: access_token, body: { refresh_token } });
    expect(out.status).toBe(204);
    expect((await me(access_token)).status).toBe(401);
    expect((await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token } })).status).toBe(401);
  });

  it('logout with only the access token revokes that session\'s refresh family, also after a rotation (SPEC §4.1)', async () => {
    const username = `logout-${Math.random().toString(36).slice(2, 8)}`;
    await userToken(t, 'supervisor', username);
    const login = async () => (await t.api('POST', '/api/v1/auth/login', { body: { username, password: 'password-for-tests-1' } })).body as { access_token: string; refresh_token: string };
    const a = await login();
    const other = await login();

    // no body at all: the access token names its family
    const out = await t.api('POST', '/api/v1/auth/logout', { token: a.access_token });
    expect(out.status).toBe(204);
    const meAfter = await me(a.access_token);
    expect(meAfter.status).toBe(401);
    expect(meAfter.body.error.code).toBe('INVALID_TOKEN');
    const refreshAfter = await refresh(a.refresh_token);
    expect(refreshAfter.status).toBe(401);
    expect(refreshAfter.body.error).toMatchObject({ code: 'INVALID_TOKEN', message: 'The token was revoked.' });

    // an access token from /auth/refresh continues the same family: logging out with it ends the chain
    const rotated = await refresh(other.refresh_token);
    expect(rotated.status).toBe(200);
    const third = await login();
    expect((await t.api('POST', '/api/v1/auth/logout', { token: rotated.body.access_token })).status).toBe(204);
    expect((await refresh(rotated.body.refresh_token)).status).toBe(401);
    // only that session: the user's other session still rotates, and no reuse alert was raised
    expect((await refresh(third.refresh_token)).status).toBe(200);
    expect(await reuseAlertsOf(username)).toEqual([]);
    // how: the access token carries its refresh family as the private claim `fam`
    expect(decodeJwt(rotated.body.access_token).fam).toBe(decodeJwt(other.refresh_token).fam);
  });

  it('a deleted agent\'s access token (REST, socket) and refresh token are refused and raise one revoked_agent_credentials alert (SPEC §9)', async () => {
    const alertsFor = async (rule: string, agentId: string) => {
      await t.server.security.alerts.settle();
      const r = await t.api('GET', `/api/v1/security/alerts?rule=${rule}&limit=1000`, { token: t.adminToken });
      expect(r.status).toBe(200);
      return (r.body.alerts as Array<{ message: string; severity: string; rule: string }>).filter((a) => a.message.includes(`agent ${agentId}`));
    };
    const deleted = async (prefix: string) => {
      const a = await registerAgent(t, { agent_id: `${prefix}-${Math.random().toString(36).slice(2, 8)}` });
      expect((await me(a.access_token)).status).toBe(200);
      expect(await alertsFor('revoked_agent_credentials', a.agent_id)).toEqual([]);
      expect((await t.api('DELETE', `/api/v1/agents/${a.agent_id}`, { token: t.adminToken })).status).toBe(204);
      return a;
    };
    const restRefused = async (token: string) => {
      const r = await me(token);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('INVALID_TOKEN');
    };
    const refreshRefused = async (token: string) => {
      const r = await refresh(token);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('INVALID_TOKEN');
    };
    const expectOneAlert = async (agentId: string) => {
      const alerts = await alertsFor('revoked_agent_credentials', agentId);
      expect(alerts).toHaveLength(1);
      expect(alerts[0]).toMatchObject({ rule: 'revoked_agent_credentials', severity: 'high' });
      expect(await alertsFor('refresh_token_reuse', agentId)).toEqual([]);
    };

    // each way of presenting the credentials raises the alert on its own
    const viaRest = await deleted('gone-rest');
    await restRefused(viaRest.access_token);
    await expectOneAlert(viaRest.agent_id);
    const viaSocket = await deleted('gone-ws');
    await expect(connectSocket(t.wsUrl, viaSocket.access_token)).rejects.toThrow('INVALID_TOKEN');
    await expectOneAlert(viaSocket.agent_id);
    const viaRefresh = await deleted('gone-refresh');
    await refreshRefused(viaRefresh.refresh_token);
    await expectOneAlert(viaRefresh.agent_id);

    // a client retrying in a loop makes one alert, not one per request
    const flood = await deleted('gone-flood');
    for (let i = 0; i < 3; i++) {
      await restRefused(flood.access_token);
      await expect(connectSocket(t.wsUrl, flood.access_token)).rejects.toThrow('INVALID_TOKEN');
      await refreshRefused(flood.refresh_token);
    }
    await expectOneAlert(flood.agent_id);
  });

  it('a refresh token revoked (logout, role change) but never used answers INVALID_TOKEN and raises no reuse alert', async () => {
    const username = `revoked-${Math.random().toString(36).slice(2, 8)}`;
    await userToken(t, 'supervisor', username);
    const login = async () => (await t.api('POST', '/api/v1/auth/login', { body: { username, password: 'password-for-tests-1' } })).body as { access_token: string; refresh_token: string };

    // logout revokes the family of the presented refresh token
    const a = await login();
    expect((await t.api('POST', '/api/v1/auth/logout', { token: a.access_token, body: { refresh_token: a.refresh_token } })).status).toBe(204);
    for (let i = 0; i < 2; i++) {
      const r = await refresh(a.refresh_token);
      expect(r.status).toBe(401);
      expect(r.body.error).toMatchObject({ code: 'INVALID_TOKEN', message: 'The token was revoked.' });
    }

    // lowering the role revokes every refresh token of the user (revokeSubject)
    const b = await login();
    const user = (await t.api('GET', '/api/v1/users?limit=1000', { token: t.adminToken })).body.users.find((u: { username: string }) => u.username === username);
    expect((await t.api('PATCH', `/api/v1/users/${user.user_id}`, { token: t.adminToken, body: { role: 'worker' } })).status).toBe(200);
    const afterRoleChange = await refresh(b.refresh_token);
    expect(afterRoleChange.status).toBe(401);
    expect(afterRoleChange.body.error.code).toBe('INVALID_TOKEN');

    expect(await reuseAlertsOf(username)).toEqual([]);
    // the user can still sign in and rotate normally (no family was revoked as "stolen")
    expect((await refresh((await login()).refresh_token)).status).toBe(200);
  });

  it('disabling a user or lowering its role takes effect on the next request and drops its sockets', async () => {
    const token = await userToken(t, 'supervisor', 'sup-to-demote');
    const list = await t.api('GET', '/api/v1/users', { token: t.adminToken });
    const user = list.body.users.find((u: { username: string }) => u.username === 'sup-to-demote');
    expect((await t.api('POST', '/api/v1/tasks', { token, body: { task_type: 'pii_detection' } })).status).toBe(201);
    const socket = await connectSocket(t.wsUrl, token);
    const dropped = new Promise<void>((resolve) => socket.on('disconnect', () => resolve()));
    await t.api('PATCH', `/api/v1/users/${user.user_id}`, { token: t.adminToken, body: { role: 'worker' } });
    const denied = await t.api('POST', '/api/v1/tasks', { token, body: { task_type: 'pii_detection' } });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('INSUFFICIENT_PERMISSIONS');
    await dropped;
    await t.api('PATCH', `/api/v1/users/${user.user_id}`, { token: t.adminToken, body: { disabled: true } });
    expect((await me(token)).status).toBe(401);
    const relog = await t.api('POST', '/api/v1/auth/login', { body: { username: 'sup-to-demote', password: 'password-for-tests-1' } });
    expect(relog.status).toBe(401);
  });

  it('agents get tokens from their API key and refresh them', async () => {
    const a = await registerAgent(t, { agent_id: 'tok-agent' });
    const claims = decodeJwt(a.access_token);
    expect(claims).toMatchObject({ agent_id: 'tok-agent', role: 'worker', typ: 'access' });
    expect(claims.exp! - claims.iat!).toBe(7200);
    const refreshed = await t.api('POST', '/api/v1/auth/refresh', { body: { refresh_token: a.refresh_token } });
    expect(refreshed.status).toBe(200);
    expect(decodeJwt(refreshed.body.access_token).agent_id).toBe('tok-agent');
  });

  it('refuses short passwords and duplicate usernames', async () => {
    const short = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username: 'shorty', password: 'short', role: 'worker' } });
    expect(short.status).toBe(400);
    expect(short.body.error.details.field_errors[0].field).toBe('password');
    await userToken(t, 'worker', 'dupe-user');
    const dup = await t.api('POST', '/api/v1/users', { token: t.adminToken, body: { username: 'DUPE-user', password: 'password-for-tests-1', role: 'worker' } });
    expect(dup.status).toBe(409);
  });
});
