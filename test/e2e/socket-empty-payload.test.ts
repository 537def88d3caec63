/**
 * `agent:heartbeat` with no payload at all is a heartbeat (SPEC §8: every field is optional);
 * events with a required field still refuse a missing payload with VALIDATION_ERROR.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELEGATION_CONFIG, connectSocket, registerAgent, startTestServer, type TestServer } from '../helpers/server.ts';

describe('socket events without a payload', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ ...DELEGATION_CONFIG });
  });
  afterAll(async () => t?.stop());

  it('acks agent:heartbeat with only an ack callback, and refuses status_update and subscribe', async () => {
    const a = await registerAgent(t, { agent_id: 'empty-payload-agent' });
    const socket = await connectSocket(t.wsUrl, a.access_token);
    try {
      const hb = await socket.timeout(5000).emitWithAck('agent:heartbeat') as { ok: boolean; next_heartbeat?: string; status?: string };
      expect(hb).toMatchObject({ ok: true, status: 'active' });
      expect(Date.parse(hb.next_heartbeat!)).toBeGreaterThan(Date.now());
      for (const event of ['agent:status_update', 'subscribe']) {
        const r = await socket.timeout(5000).emitWithAck(event) as { ok: boolean; error?: { code: string } };
        expect(r, event).toMatchObject({ ok: false, error: { code: 'VALIDATION_ERROR' } });
      }
    } finally {
      socket.close();
    }
  });
});
