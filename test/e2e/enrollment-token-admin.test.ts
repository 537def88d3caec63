/**
 * Enrollment tokens can be listed and revoked (SPEC §4.2, `agent:register`): the list shows what
 * each token grants and has left, never the token itself; a revoked token registers no more
 * agents; both routes are rate-limited and audited. Driven through the SDK and raw HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpClient } from '../../src/sdk/index.ts';
import { DELEGATION_CONFIG, startTestServer, type TestServer } from '../helpers/server.ts';
import { engines, type TestDb } from '../helpers/stores.ts';

for (const engine of engines()) {
  describe(`enrollment token administration (${engine.name})`, () => {
    let t: TestServer;
    let store: TestDb;
    let admin: McpClient;
    beforeAll(async () => {
      store = await engine.open();
      t = await startTestServer({ ...DELEGATION_CONFIG }, { db: store.db });
      admin = new McpClient({ url: t.url, accessToken: t.adminToken });
    });
    afterAll(async () => {
      await t?.stop();
      await store?.dispose();
    });

    const register = (token: string, agent_id: string) => t.api('POST', '/api/v1/agents/register', { token, body: { agent_id, name: agent_id, type: 'general', capabilities: ['a'], version: '1.0.0' } });

    it('lists tokens without their secret, newest first, paginated', async () => {
      const first = await admin.agents.enrollmentToken({ uses: 3, ttl_seconds: 600 });
      const second = await admin.agents.enrollmentToken({ uses: 1, ttl_seconds: 600, role: 'supervisor' });
      expect((await register(second.enrollment_token, 'enrolled-once')).status).toBe(201);
      const raw = await t.api('GET', '/api/v1/agents/enrollment-tokens', { token: t.adminToken });
      expect(raw.status).toBe(200);
      expect(raw.headers.get('x-ratelimit-limit')).toMatch(/^\d+$/);
      for (const secret of [first.enrollment_token, second.enrollment_token]) expect(raw.text).not.toContain(secret);
      expect(raw.text).not.toContain('token_hash');
      const page = await admin.agents.enrollmentTokens();
      expect(page.enrollment_tokens.map((x) => [x.token_id, x.role, x.uses_left, x.uses_total, x.status, x.created_by])).toEqual([
        [second.token_id, 'supervisor', 0, 1, 'used_up', 'user:admin'],
        [first.token_id, 'worker', 3, 3, 'active', 'user:admin'],
      ]);
      expect(page.enrollment_tokens[1]!.expires_at).toBe(first.expires_at);
      expect(page.pagination).toEqual({ total: 2, limit: 50, offset: 0, has_more: false, next_offset: null });
      const one = await admin.agents.enrollmentTokens({ limit: 1, offset: 1 });
      expect(one.enrollment_tokens.map((x) => x.token_id)).toEqual([first.token_id]);
      expect(one.pagination).toMatchObject({ total: 2, has_more: false });
    });

    it('revokes a token: it registers no more agents, the others still do, and the revoke is audited', async () => {
      const doomed = await admin.agents.enrollmentToken({ uses: 5, ttl_seconds: 600 });
      const kept = await admin.agents.enrollmentToken({ uses: 5, ttl_seconds: 600 });
      expect((await register(doomed.enrollment_token, 'before-revoke')).status).toBe(201);
      const del = await t.api('DELETE', `/api/v1/agents/enrollment-tokens/${doomed.token_id.toUpperCase()}`, { token: t.adminToken });
      expect(del.status).toBe(204);
      expect(del.headers.get('x-ratelimit-limit')).toMatch(/^\d+$/);
      const refused = await register(doomed.enrollment_token, 'after-revoke');
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe('INVALID_TOKEN');
      expect((await register(kept.enrollment_token, 'kept-token-agent')).status).toBe(201);
      // The agent it registered before keeps working.
      expect((await t.api('GET', '/api/v1/agents/before-revoke', { token: t.adminToken })).status).toBe(200);
      const listed = (await admin.agents.enrollmentTokens()).enrollment_tokens.find((x) => x.token_id === doomed.token_id)!;
      expect(listed).toMatchObject({ status: 'revoked', uses_left: 4 });
      expect(Date.parse(listed.revoked_at!)).toBeGreaterThan(Date.now() - 60_000);
      // Revoking again changes nothing (same revoked_at); through the SDK too.
      await admin.agents.revokeEnrollmentToken(doomed.token_id);
      expect((await admin.agents.enrollmentTokens()).enrollment_tokens.find((x) => x.token_id === doomed.token_id)!.revoked_at).toBe(listed.revoked_at);
      for (const id of ['01900000-0000-7000-8000-00000000abcd', 'not-a-token']) {
        const missing = await t.api('DELETE', `/api/v1/agents/enrollment-tokens/${id}`, { token: t.adminToken });
        expect(missing.status, id).toBe(404);
        expect(missing.body.error.code).toBe('NOT_FOUND');
      }
      const audit = await t.api('GET', '/api/v1/audit?resource_type=enrollment_token&limit=1000', { token: t.adminToken });
      const entries = audit.body.entries as Array<{ action: string; resource_id: string | null; resource_ids: string[] | null; actor: { id: string } }>;
      expect(entries.filter((e) => e.action === 'delete').map((e) => e.resource_id)).toEqual([doomed.token_id, doomed.token_id]);
      expect(entries.some((e) => e.action === 'read' && (e.resource_ids ?? []).includes(doomed.token_id))).toBe(true);
    });

    it('refuses callers without agent:register', async () => {
      const issued = await admin.agents.enrollmentToken({ uses: 1, ttl_seconds: 60 });
      const worker = (await register(issued.enrollment_token, 'plain-worker')).body.access_token as string;
      expect((await t.api('GET', '/api/v1/agents/enrollment-tokens', { token: worker })).status).toBe(403);
      expect((await t.api('DELETE', `/api/v1/agents/enrollment-tokens/${issued.token_id}`, { token: worker })).status).toBe(403);
      expect((await admin.agents.enrollmentTokens()).enrollment_tokens.find((x) => x.token_id === issued.token_id)!.status).toBe('used_up');
    });
  });
}
