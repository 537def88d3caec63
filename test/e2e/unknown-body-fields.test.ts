/**
 * SPEC §2: unknown body fields are rejected (400 VALIDATION_ERROR in the error envelope), also on
 * the POST routes that take no input (task retry, agent drain, MFA setup, stage retry, alert ack). Those still accept no
 * body at all and `{}`, and a refused request changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAgent, startTestServer, userToken, type ApiResponse, type TestServer } from '../helpers/server.ts';

describe('POST routes without input refuse unknown body fields', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false });
  });
  afterAll(async () => t?.stop());

  const expectUnknownField = (r: ApiResponse) => {
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: {
        code: 'VALIDATION_ERROR',
        message: expect.any(String),
        details: { field_errors: [{ field: 'bogus', message: 'is not allowed (unknown field)' }] },
        request_id: r.headers.get('x-request-id'),
      },
    });
  };

  it('POST /tasks/{id}/retry', async () => {
    const a = await registerAgent(t, { agent_id: 'body-retry-agent', capabilities: ['cap_body_retry'] });
    const created = await t.api('POST', '/api/v1/tasks', { token: t.adminToken, body: { task_type: 'body_retry', required_capabilities: ['cap_body_retry'] } });
    expect(created.status).toBe(201);
    const id = created.body.task_id as string;
    /** Claims the task as the agent and fails it for good: a failed task is what an operator retries. */
    const failIt = async (attempt: number) => {
      const claim = await t.api('POST', '/api/v1/tasks/claim', { token: a.access_token, body: { max: 1, wait_ms: 2000 } });
      expect(claim.body.tasks.map((x: { task_id: string; attempt: number }) => [x.task_id, x.attempt])).toEqual([[id, attempt]]);
      const failed = await t.api('POST', `/api/v1/tasks/${id}/fail`, { token: a.access_token, body: { attempt, error: { code: 'BAD_INPUT', message: 'no', retryable: false } } });
      expect(failed.status).toBe(200);
    };
    const status = async () => (await t.api('GET', `/api/v1/tasks/${id}`, { token: t.adminToken })).body.status as string;

    await failIt(1);
    expectUnknownField(await t.api('POST', `/api/v1/tasks/${id}/retry`, { token: t.adminToken, body: { bogus: 1 } }));
    expect(await status()).toBe('failed');
    const noBody = await t.api('POST', `/api/v1/tasks/${id}/retry`, { token: t.adminToken });
    expect(noBody.status).toBe(200);
    expect(noBody.body).toMatchObject({ task_id: id, status: 'pending' });

    await failIt(2);
    const empty = await t.api('POST', `/api/v1/tasks/${id}/retry`, { token: t.adminToken, body: {} });
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ task_id: id, status: 'pending' });
  });

  it('POST /agents/{id}/drain', async () => {
    await registerAgent(t, { agent_id: 'body-drain-agent' });
    const draining = async () => (await t.api('GET', '/api/v1/agents/body-drain-agent', { token: t.adminToken })).body.draining as boolean;
    expectUnknownField(await t.api('POST', '/api/v1/agents/body-drain-agent/drain', { token: t.adminToken, body: { bogus: 1 } }));
    expect(await draining()).toBe(false);
    const empty = await t.api('POST', '/api/v1/agents/body-drain-agent/drain', { token: t.adminToken, body: {} });
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ agent_id: 'body-drain-agent', draining: true });
    const noBody = await t.api('POST', '/api/v1/agents/body-drain-agent/drain', { token: t.adminToken });
    expect(noBody.status).toBe(200);
    expect(noBody.body).toMatchObject({ agent_id: 'body-drain-agent', draining: true });
  });

  it('POST /auth/mfa/setup', async () => {
    const token = await userToken(t, 'supervisor');
    expectUnknownField(await t.api('POST', '/api/v1/auth/mfa/setup', { token, body: { bogus: 1 } }));
    for (const body of [undefined, {}]) {
      const r = await t.api('POST', '/api/v1/auth/mfa/setup', { token, body });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ secret: expect.any(String), otpauth_url: expect.stringMatching(/^otpauth:\/\/totp\//), recovery_codes: expect.any(Array) });
    }
  });

  it('POST /pipelines/{id}/stages/{stage}/retry and POST /security/alerts/{id}/ack', async () => {
    const none = '0190b4a2-0000-7000-8000-000000000000';
    for (const path of [`/api/v1/pipelines/${none}/stages/x/retry`, `/api/v1/security/alerts/${none}/ack`]) {
      expectUnknownField(await t.api('POST', path, { token: t.adminToken, body: { bogus: 1 } }));
      // Without the unknown field the request reaches the route, which does not know the id.
      for (const body of [undefined, {}]) expect((await t.api('POST', path, { token: t.adminToken, body })).status).toBe(404);
    }
  });
});
