/** Presence end to end: an agent that stops heartbeating becomes `offline`; a heartbeat brings it back. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAgent, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

describe('agent presence', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false, 'agents.timeout_seconds': 5, 'agents.rest_timeout_seconds': 5 });
  });
  afterAll(async () => t?.stop());

  it('marks a silent agent offline after the timeout and active again on its next heartbeat', async () => {
    const a = await registerAgent(t, { agent_id: 'silent-agent' });
    const hb = await t.api('POST', '/api/v1/agents/silent-agent/heartbeat', { token: a.access_token, body: { status: 'active' } });
    expect(hb.status).toBe(200);
    const status = async () => (await t.api('GET', '/api/v1/agents/silent-agent', { token: t.adminToken })).body.status as string;
    expect(await status()).toBe('active');
    const started = Date.now();
    await waitFor(async () => (await status()) === 'offline', 20_000, 200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    const health = await t.api('GET', '/api/v1/agents/silent-agent/health', { token: t.adminToken });
    expect(health.body).toMatchObject({ status: 'unhealthy', agent_status: 'offline' });
    await t.api('POST', '/api/v1/agents/silent-agent/heartbeat', { token: a.access_token, body: {} });
    expect(await status()).toBe('active');
  }, 40_000);
});
