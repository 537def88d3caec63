/**
 * Graceful shutdown over real HTTP (SPEC §2): a request already in flight when the server starts
 * closing completes; a request arriving during the close window gets 503 SERVICE_UNAVAILABLE in
 * the error envelope, with Retry-After, X-Request-ID and the security headers.
 *
 * Deterministic close window: request A is held in flight on a raw keep-alive connection (its
 * headers sent, its body not), so `app.close()` waits for it; once the server stops listening
 * (close has begun), A's body is completed and request B is pipelined on the same connection.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, startTestServer, waitFor, type TestServer } from '../helpers/server.ts';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits the bytes a connection received into its HTTP/1.1 responses (Content-Length framed). */
function parseResponses(raw: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = raw;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const [statusLine, ...lines] = rest.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.subarray(end + 4, end + 4 + length).toString('utf8') });
    rest = rest.subarray(end + 4 + length);
  }
  return out;
}

describe('shutdown', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ 'agents.builtin': false });
  });
  afterAll(async () => t?.stop());

  it('answers requests arriving while the server closes with a 503 envelope and lets in-flight ones finish', async () => {
    const server = t.server.app.server;
    const { port } = server.address() as net.AddressInfo;
    const conn = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    conn.on('data', (d: Buffer) => received.push(d));
    const ended = new Promise<void>((resolve) => conn.on('close', () => resolve()));
    await new Promise<void>((resolve) => conn.once('connect', () => resolve()));

    // A: in flight (headers and half its body) before the close begins
    const arrived = new Promise<void>((resolve) => server.once('request', () => resolve()));
    const body = JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD });
    const half = Math.floor(body.length / 2);
    conn.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-ID: in-flight-a\r\n\r\n${body.slice(0, half)}`);
    await arrived;

    const stopping = t.stop();
    await waitFor(() => !server.listening, 10_000, 5);
    // A completes; B arrives during the close window (pipelined on A's busy connection)
    conn.write(`${body.slice(half)}GET /api/v1/auth/me HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: closing-b\r\n\r\n`);
    await ended;
    await stopping;

    const [a, b] = parseResponses(Buffer.concat(received));
    expect(a?.status).toBe(200);
    expect(a?.headers['x-request-id']).toBe('in-flight-a');
    expect(JSON.parse(a!.body).access_token).toEqual(expect.any(String));

    expect(b?.status).toBe(503);
    expect(JSON.parse(b!.body)).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: 'The server is shutting down.', request_id: 'closing-b' } });
    expect(b!.headers['x-request-id']).toBe('closing-b');
    expect(b!.headers['retry-after']).toBe('5');
    expect(b!.headers['connection']).toBe('close');
    expect(b!.headers['x-content-type-options']).toBe('nosniff');
    expect(b!.headers['x-frame-options']).toBe('DENY');
    expect(b!.headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });
});
